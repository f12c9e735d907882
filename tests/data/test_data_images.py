"""Image folders (every mode of issue 5, corrupt and small files), CIFAR-10 (npz and pickles), digits."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from PIL import Image

from hidden_geometry.data.images import (
    digits_images,
    imagenet_train_folder,
    read_cifar10,
    read_image_folder,
    resize_centre_crop,
    to_rgb,
)
from hidden_geometry.errors import InputError

SIZE = 16


def save(image: Image.Image, path, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)
    return path


@pytest.fixture
def folder(tmp_path):
    """Two classes holding one image of each kind issue 5 names, plus a corrupt and a truncated file."""
    root = tmp_path / "train"
    red = Image.new("RGB", (40, 30), (200, 10, 10))
    save(red, root / "n01" / "rgb.JPEG", quality=95)
    save(Image.new("L", (32, 32), 77), root / "n01" / "grey.png")
    save(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), root / "n01" / "cmyk.jpg", quality=95)
    rgba = Image.new("RGBA", (32, 32), (0, 0, 255, 0))  # fully transparent blue -> white
    save(rgba, root / "n01" / "rgba.png")
    palette = Image.new("P", (32, 32), 1)
    palette.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    save(palette, root / "n02" / "palette.png")
    transparent = Image.new("P", (32, 32), 0)
    transparent.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    save(transparent, root / "n02" / "palette_transparent.png", transparency=0)
    save(Image.fromarray(np.full((32, 32), 65535, dtype=np.uint16)), root / "n02" / "grey16.png")
    save(Image.new("RGB", (8, 6), (10, 200, 10)), root / "n02" / "small.png")
    (root / "n02" / "corrupt.jpg").write_bytes(b"this is not an image at all")
    whole = root / "n01" / "rgb.JPEG"
    (root / "n02" / "truncated.jpg").write_bytes(whole.read_bytes()[:200])
    (root / "n02" / "notes.txt").write_text("not an image extension: ignored")
    return root


def test_every_mode_becomes_rgb_of_the_right_size(folder):
    table, images, summary = read_image_folder(folder, size=SIZE)
    assert images.dtype == np.uint8 and images.shape == (len(table), SIZE, SIZE, 3)
    by_id = {item: images[i] for i, item in enumerate(table.ids)}
    modes = dict(zip(table.ids, table.labels("mode")))
    assert (modes["n01/cmyk.jpg"], modes["n01/grey.png"], modes["n01/rgba.png"], modes["n02/palette.png"]) == (
        "CMYK", "L", "RGBA", "P")
    assert modes["n02/grey16.png"].startswith("I")
    assert summary["modes"]["P"] == 2
    assert np.all(np.abs(by_id["n01/rgb.JPEG"].astype(int) - [200, 10, 10]) <= 8)
    assert np.all(by_id["n01/grey.png"] == 77)
    assert np.all(by_id["n01/rgba.png"] == 255)  # transparent over white
    assert np.all(by_id["n02/palette.png"] == [0, 255, 0])
    assert np.all(by_id["n02/palette_transparent.png"] == 255)
    assert np.all(by_id["n02/grey16.png"] == 255)  # 16-bit full scale -> 255
    cmyk = by_id["n01/cmyk.jpg"].astype(int)  # C=0, M=Y=255 is red
    assert cmyk[..., 0].mean() > 200 and cmyk[..., 1].mean() < 60 and cmyk[..., 2].mean() < 60
    assert table.labels() == [i.split("/")[0] for i in table.ids]


def test_corrupt_files_are_skipped_and_named(folder):
    table, _, summary = read_image_folder(folder, size=SIZE)
    assert sorted(summary["corrupt_files"]) == sorted(str(folder / "n02" / n) for n in ("corrupt.jpg", "truncated.jpg"))
    assert summary["dropped"] == {"corrupt": 2}
    assert "n02/corrupt.jpg" not in table.ids and summary["n_kept"] == len(table) == 8
    assert summary["n_read"] == 10


def test_corrupt_file_is_an_error_by_policy(folder):
    with pytest.raises(InputError, match=r"corrupt.jpg: cannot read image"):
        read_image_folder(folder, size=SIZE, corrupt_images="error")


def test_small_images_are_upscaled_and_counted(folder):
    _, _, summary = read_image_folder(folder, size=SIZE)
    assert summary["upscaled_ids"] == ["n02/small.png"] and summary["n_upscaled"] == 1
    _, _, larger = read_image_folder(folder, size=36)
    assert larger["n_upscaled"] == 8  # every image is below 36 pixels on its shorter side


def test_resize_centre_crop_geometry():
    # A wide image whose centre column band is white: after resize + crop the centre stays white, the edges are cut.
    array = np.zeros((20, 60, 3), dtype=np.uint8)
    array[:, 25:35] = 255
    cropped, upscaled = resize_centre_crop(Image.fromarray(array), 10)
    out = np.asarray(cropped)
    assert out.shape == (10, 10, 3) and not upscaled
    assert out[:, 4:6].min() > 200 and out[:, 0].max() < 30


def test_to_rgb_keeps_rgb_and_converts_one_bit():
    assert to_rgb(Image.new("RGB", (2, 2))).mode == "RGB"
    assert np.all(np.asarray(to_rgb(Image.new("1", (2, 2), 1))) == 255)


def test_class_selection_and_seeded_per_class(folder):
    table, _, _ = read_image_folder(folder, classes=["n02"], size=SIZE)
    assert set(table.labels()) == {"n02"}
    first, _, _ = read_image_folder(folder, per_class=2, seed=1, size=SIZE)
    again, _, _ = read_image_folder(folder, per_class=2, seed=1, size=SIZE)
    assert first.ids == again.ids
    assert sum(1 for label in first.labels() if label == "n01") == 2
    seeds = {tuple(read_image_folder(folder, per_class=2, seed=s, size=SIZE)[0].ids) for s in range(6)}
    assert len(seeds) > 1
    one, _, summary = read_image_folder(folder, n_classes=1, seed=0, size=SIZE)
    assert summary["n_classes"] == 1 and len(set(one.labels())) == 1
    with pytest.raises(InputError, match="class folder\\(s\\) not found: n99"):
        read_image_folder(folder, classes=["n99"], size=SIZE)


def test_folder_errors(tmp_path):
    with pytest.raises(InputError, match="image folder not found"):
        read_image_folder(tmp_path / "nope")
    (tmp_path / "flat").mkdir()
    with pytest.raises(InputError, match="no class sub-folders"):
        read_image_folder(tmp_path / "flat")
    (tmp_path / "flat" / "c").mkdir()
    (tmp_path / "flat" / "c" / "bad.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(InputError, match="no readable images"):
        read_image_folder(tmp_path / "flat")


def test_imagenet_train_folder(tmp_path):
    assert imagenet_train_folder(tmp_path) == tmp_path
    (tmp_path / "train").mkdir()
    assert imagenet_train_folder(tmp_path) == tmp_path / "train"


# ---- CIFAR-10 ------------------------------------------------------------------------------------------------


def test_real_cifar10_npz(shared_data):
    table, images, summary = read_cifar10(shared_data / "images" / "cifar10-test-100-per-class.npz")
    assert images.shape == (1000, 32, 32, 3) and images.dtype == np.uint8
    assert len(table) == 1000 and len(set(table.ids)) == 1000
    assert sorted(set(table.labels())) == sorted(summary["class_names"]) and len(summary["class_names"]) == 10
    sub, sub_images, _ = read_cifar10(shared_data / "images" / "cifar10-test-100-per-class.npz", per_class=3, seed=0)
    assert len(sub) == 30 and all(table.labels().count(c) == 100 for c in set(table.labels()))
    row = table.ids.index(sub.ids[0])
    assert np.array_equal(sub_images[0], images[row])


def write_cifar_pickles(root, n_per_batch: int = 4):
    """A miniature of the official python folder, pickled the way the originals are (bytes keys)."""
    root.mkdir()
    rng = np.random.default_rng(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8)
        labels = [int(x) for x in rng.integers(0, 10, size=n_per_batch)]
        files = [f"{name}_{i}.png".encode() for i in range(n_per_batch)]
        batch = {b"batch_label": name.encode(), b"labels": labels, b"data": data, b"filenames": files}
        with open(root / name, "wb") as handle:
            pickle.dump(batch, handle, protocol=2)
        batches[name] = batch
    with open(root / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": [f"class{i}".encode() for i in range(10)], b"num_vis": 3072}, handle, protocol=2)
    return batches


def test_cifar10_python_pickles(tmp_path):
    batches = write_cifar_pickles(tmp_path / "cifar-10-batches-py")
    table, images, summary = read_cifar10(tmp_path / "cifar-10-batches-py", split="test")
    test = batches["test_batch"]
    assert len(table) == 4 and table.ids[0] == "test_batch/test_batch_0.png"
    # Channel-first rows: the first 1024 values are the red plane.
    assert np.array_equal(images[1, :, :, 0].ravel(), test[b"data"][1, :1024])
    assert np.array_equal(images[1, :, :, 2].ravel(), test[b"data"][1, 2048:])
    assert table.labels() == [f"class{index}" for index in test[b"labels"]]
    train, _, _ = read_cifar10(tmp_path / "cifar-10-batches-py", split="train")
    everything, _, _ = read_cifar10(tmp_path / "cifar-10-batches-py", split="all")
    assert len(train) == 20 and len(everything) == 24


def test_cifar10_pickle_with_code_is_refused(tmp_path):
    write_cifar_pickles(tmp_path / "py")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(tmp_path / "py" / "test_batch", "wb") as handle:
        pickle.dump({b"data": Evil()}, handle)
    with pytest.raises(InputError, match=r"test_batch: not a CIFAR-10 python batch \(refusing to load builtins.print"):
        read_cifar10(tmp_path / "py", split="test")


def test_cifar10_resize_and_errors(tmp_path):
    images = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "c.npz", images=images, labels=np.array([0, 1, 2, 3]))
    table, resized, summary = read_cifar10(tmp_path / "c.npz", size=24)
    assert resized.shape == (4, 24, 24, 3) and summary["n_resized"] == 4
    assert table.labels() == ["airplane", "automobile", "bird", "cat"]
    np.savez(tmp_path / "nolabels.npz", images=images)
    with pytest.raises(InputError, match="without key\\(s\\) labels"):
        read_cifar10(tmp_path / "nolabels.npz")
    np.savez(tmp_path / "badlabel.npz", images=images, labels=np.array([0, 1, 2, 10]))
    with pytest.raises(InputError, match="labels outside"):
        read_cifar10(tmp_path / "badlabel.npz")
    with pytest.raises(InputError, match="not found"):
        read_cifar10(tmp_path / "missing.npz")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(InputError, match="test_batch: CIFAR-10 batch not found"):
        read_cifar10(tmp_path / "empty_dir")


def test_digits_as_rgb():
    table, images, summary = digits_images(size=SIZE, per_class=2, seed=0)
    assert images.shape == (20, SIZE, SIZE, 3) and images.dtype == np.uint8
    assert np.array_equal(images[..., 0], images[..., 2])  # greyscale in all three channels
    assert sorted(set(table.labels())) == [str(d) for d in range(10)]
    assert images.max() > 200 and images.min() < 30
    assert digits_images(size=SIZE, per_class=2, seed=0)[0].ids == table.ids


def test_cifar10_pickles_written_by_numpy_1_load(tmp_path):
    """The official batches were pickled under numpy 1, whose arrays refer to `numpy.core.multiarray`."""
    batches = write_cifar_pickles(tmp_path / "py")
    raw = (tmp_path / "py" / "test_batch").read_bytes()
    assert b"numpy._core.multiarray" in raw
    (tmp_path / "py" / "test_batch").write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    _, images, _ = read_cifar10(tmp_path / "py", split="test")
    assert np.array_equal(images[0, :, :, 1].ravel(), batches["test_batch"][b"data"][0, 1024:2048])
