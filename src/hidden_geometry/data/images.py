"""Images: class folders (ImageNet ILSVRC `train/<wnid>/*.JPEG` or any folder-per-class layout), CIFAR-10 and
scikit-learn's digits, all as uint8 RGB [N, size, size, 3] beside an items table.

Every image is converted to RGB: greyscale (L, 1), palette (P), CMYK, YCbCr... through Pillow; images with
transparency (RGBA, LA, PA, P with a transparent colour) are composited over white; 16/32-bit integer and float
greyscale (I;16, I, F) are scaled to 0-255 by their type's range. Then the shorter side is resized to `size`
(bicubic) and the centre `size` x `size` window cut out; an image whose shorter side is below `size` is upscaled
and counted. A file Pillow cannot decode is skipped and its path listed in the summary (policy 'skip'), or an
InputError (policy 'error').
"""

from __future__ import annotations

import os
import pickle
import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageOps

from ..errors import InputError
from .items import ItemTable

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
CORRUPT_POLICIES = ("skip", "error")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow image as 8-bit RGB; transparency composited over white, wide greyscale scaled down."""
    mode = image.mode
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode.startswith("I;16") or mode in ("I", "F"):
        array = np.asarray(image).astype(np.float64)
        if mode.startswith("I;16"):
            scale = 65535.0
        elif mode == "I":
            # 32-bit integer images in practice hold 16-bit data (PNG 16-bit greyscale opens as I): use the
            # 16-bit range unless the values exceed it.
            scale = 65535.0 if array.max(initial=0) <= 65535 else float(array.max())
        else:
            scale = 1.0 if array.max(initial=0) <= 1.0 else 255.0
        grey = np.clip(np.round(array / scale * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if mode == "RGB":
        return image
    return image.convert("RGB")


def resize_centre_crop(image: Image.Image, size: int) -> tuple[Image.Image, bool]:
    """Resize the shorter side to `size` (bicubic), cut the centre square; also says whether it was upscaled."""
    if size < 1:
        raise InputError(f"image size must be at least 1, got {size}")
    width, height = image.size
    short = min(width, height)
    upscaled = short < size
    if short != size:
        new_w = max(size, round(width * size / short))
        new_h = max(size, round(height * size / short))
        image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
        width, height = new_w, new_h
    left = (width - size) // 2
    top = (height - size) // 2
    return image.crop((left, top, left + size, top + size)), upscaled


def load_image(path: str | os.PathLike, size: int) -> tuple[np.ndarray, bool, str]:
    """One image file as uint8 [size, size, 3]; also whether it was upscaled and its original mode."""
    with Image.open(path) as opened:
        mode = opened.mode
        if opened.format == "JPEG":
            # Decode at a reduced DCT scale that still leaves both sides >= size: several times faster on
            # ImageNet-sized photos, and deterministic.
            opened.draft("RGB", (size, size))
        opened.load()
        image = ImageOps.exif_transpose(opened) or opened
        rgb = to_rgb(image)
    cropped, upscaled = resize_centre_crop(rgb, size)
    return np.asarray(cropped, dtype=np.uint8).copy(), upscaled, mode


def _class_rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(name.encode("utf-8"))])


def _list_classes(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _skip_reason(path: Path) -> str | None:
    """Why an entry of a class folder is not read as an image, or None when it is one."""
    if path.name.startswith("."):
        return "hidden file"
    if path.is_symlink() and not path.exists():
        return "broken link"
    if path.is_dir():
        return "sub-folder (images are read only directly inside a class folder)"
    if not path.is_file():
        return "not a regular file"
    if path.suffix == "":
        return "no file extension"
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        return f"extension {path.suffix} is not an image extension"
    return None


def _scan_class_folder(folder: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """(image files, sorted; skipped entries as (path, reason)): every entry is one or the other."""
    files: list[Path] = []
    skipped: list[tuple[str, str]] = []
    for path in sorted(folder.iterdir()):
        reason = _skip_reason(path)
        if reason is None:
            files.append(path)
        else:
            skipped.append((str(path), reason))
    return files, skipped


def _skipped_summary(skipped: list[tuple[str, str]], max_named: int = 50) -> dict[str, Any]:
    """Counts of skipped entries by reason, and the first `max_named` with their reasons (for dataset.json)."""
    by_reason: dict[str, int] = {}
    for _, reason in skipped:
        by_reason[reason] = by_reason.get(reason, 0) + 1
    return {
        "n_skipped_files": len(skipped),
        "skipped_by_reason": dict(sorted(by_reason.items())),
        "skipped_files": [{"path": path, "reason": reason} for path, reason in skipped[:max_named]],
    }


def read_image_folder(
    root: str | os.PathLike,
    classes: Sequence[str] | None = None,
    per_class: int | None = None,
    seed: int = 0,
    size: int = 224,
    corrupt_images: str = "skip",
    n_classes: int | None = None,
) -> tuple[ItemTable, np.ndarray, dict[str, Any]]:
    """Images from `root/<class>/<file>`: `classes` (default all, sorted) or `n_classes` drawn with `seed`;
    `per_class` files per class drawn with `seed` (kept in file-name order); labels = class folder names.

    Returns (items, images uint8 [N, size, size, 3], summary). Ids are `<class>/<file name>`.
    A corrupt file is skipped and not replaced by another (the summary names it), or InputError per policy.
    """
    if corrupt_images not in CORRUPT_POLICIES:
        raise InputError(f"corrupt_images must be one of {CORRUPT_POLICIES}, got {corrupt_images!r}")
    folder = Path(root)
    if not folder.is_dir():
        raise InputError(f"{folder}: image folder not found")
    available = _list_classes(folder)
    if classes is not None:
        missing = [c for c in classes if c not in available]
        if missing:
            raise InputError(f"{folder}: class folder(s) not found: {', '.join(missing[:5])}")
        chosen = list(dict.fromkeys(classes))
    else:
        chosen = available
    if n_classes is not None:
        if n_classes > len(chosen):
            raise InputError(f"{folder}: n_classes={n_classes} but only {len(chosen)} class folders")
        pick = np.random.default_rng(seed).choice(len(chosen), size=n_classes, replace=False)
        chosen = sorted(chosen[i] for i in pick)
    if not chosen:
        raise InputError(f"{folder}: no class sub-folders (expected one folder per class)")
    selected: list[tuple[str, list[Path]]] = []
    skipped = [(str(p), "file outside the class folders") for p in sorted(folder.iterdir())
               if not p.is_dir() and not p.name.startswith(".")]
    for name in chosen:
        files, skipped_here = _scan_class_folder(folder / name)
        skipped += skipped_here
        if per_class is not None and len(files) > per_class:
            pick = np.sort(_class_rng(seed, name).choice(len(files), size=per_class, replace=False))
            files = [files[i] for i in pick]
        selected.append((name, files))
    # One array for all images, filled in place: no second copy from stacking a list.
    images = np.empty((sum(len(f) for _, f in selected), size, size, 3), dtype=np.uint8)
    ids: list[str] = []
    labels: list[str] = []
    modes: list[str] = []
    corrupt: list[str] = []
    upscaled: list[str] = []
    mode_counts: dict[str, int] = {}
    empty_classes: list[str] = []
    for name, files in selected:
        n_before = len(ids)
        for file in files:
            try:
                pixels, was_upscaled, mode = load_image(file, size)
            except MemoryError:
                raise
            except Exception as exc:  # noqa: BLE001 - a damaged file can make Pillow raise almost anything
                if corrupt_images == "error":
                    raise InputError(f"{file}: cannot read image ({type(exc).__name__}: {exc})") from exc
                corrupt.append(str(file))
                continue
            item_id = f"{name}/{file.name}"
            images[len(ids)] = pixels
            ids.append(item_id)
            labels.append(name)
            modes.append(mode)
            mode_counts[mode] = mode_counts.get(mode, 0) + 1
            if was_upscaled:
                upscaled.append(item_id)
        if len(ids) == n_before:
            empty_classes.append(name)
    if not ids:
        raise InputError(f"{folder}: no readable images in {len(chosen)} class folder(s)")
    images = images[: len(ids)]
    table = ItemTable(ids=ids, columns={"label": labels, "group": [""] * len(ids), "mode": modes})
    summary = {
        "source": str(folder),
        "n_classes": len(chosen) - len(empty_classes),
        "classes": chosen,
        "classes_without_images": empty_classes,
        "n_read": len(ids) + len(corrupt),
        "n_kept": len(ids),
        "size": size,
        "dropped": {"corrupt": len(corrupt)},
        "corrupt_files": corrupt,
        "n_upscaled": len(upscaled),
        "upscaled_ids": upscaled[:50],
        "modes": dict(sorted(mode_counts.items())),
        **_skipped_summary(skipped),
    }
    return table, images, summary


def imagenet_train_folder(root: str | os.PathLike) -> Path:
    """The class-folder root of an ILSVRC tree: `root/train` when present (or `root/Data/CLS-LOC/train`),
    else `root`."""
    base = Path(root)
    for candidate in (base / "train", base / "Data" / "CLS-LOC" / "train"):
        if candidate.is_dir():
            return candidate
    return base


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles CIFAR's python batches without running arbitrary code: only numpy arrays and plain types."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module.startswith("numpy.core."):
            module = "numpy._core." + module[len("numpy.core.") :]
        return super().find_class(module, name)


def _load_cifar_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            batch = _ArrayOnlyUnpickler(handle, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as exc:
        raise InputError(f"{path}: not a CIFAR-10 python batch ({exc})") from exc
    if not isinstance(batch, dict):
        raise InputError(f"{path}: not a CIFAR-10 python batch (no dict inside)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}


def _cifar_from_pickles(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    names = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
    wanted = names["train"] + names["test"] if split == "all" else names[split]
    meta_path = folder / "batches.meta"
    class_names = list(CIFAR10_CLASSES)
    if meta_path.is_file():
        meta = _load_cifar_pickle(meta_path)
        if "label_names" in meta:
            class_names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta["label_names"]]
    images, labels, files = [], [], []
    for name in wanted:
        path = folder / name
        if not path.is_file():
            raise InputError(f"{path}: CIFAR-10 batch not found (split '{split}')")
        batch = _load_cifar_pickle(path)
        if "data" not in batch or "labels" not in batch:
            raise InputError(f"{path}: CIFAR-10 batch without 'data' and 'labels'")
        data = np.asarray(batch["data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3072:
            raise InputError(f"{path}: CIFAR-10 data must be [N, 3072], got {list(data.shape)}")
        # Rows are 1024 red, 1024 green, 1024 blue values, each 32x32 row-major.
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(batch["labels"], dtype=np.int64))
        raw_files = batch.get("filenames") or [f"{i:05d}.png" for i in range(len(data))]
        files += [f"{name}/{f.decode() if isinstance(f, bytes) else f}" for f in raw_files]
    return np.concatenate(images), np.concatenate(labels), class_names, files


def read_cifar10(
    path: str | os.PathLike,
    split: str = "test",
    per_class: int | None = None,
    seed: int = 0,
    size: int | None = None,
) -> tuple[ItemTable, np.ndarray, dict[str, Any]]:
    """CIFAR-10 from an .npz (keys images, labels, class_names, optional files) or the official python folder
    (data_batch_1..5, test_batch, batches.meta; `split` 'train', 'test' or 'all').

    `per_class` images per class drawn with `seed` (input order kept); `size` resizes from 32 (bicubic).
    """
    source = Path(path)
    if split not in ("train", "test", "all"):
        raise InputError(f"CIFAR-10 split must be 'train', 'test' or 'all', got {split!r}")
    if source.is_dir():
        images, labels, class_names, files = _cifar_from_pickles(source, split)
    elif source.is_file():
        try:
            with np.load(source, allow_pickle=False) as npz:
                missing = [k for k in ("images", "labels") if k not in npz.files]
                if missing:
                    raise InputError(f"{source}: npz without key(s) {', '.join(missing)} (has {', '.join(npz.files)})")
                images = np.asarray(npz["images"])
                labels = np.asarray(npz["labels"]).astype(np.int64)
                class_names = (
                    [str(c) for c in npz["class_names"]] if "class_names" in npz.files else list(CIFAR10_CLASSES)
                )
                files = (
                    [str(f) for f in npz["files"]] if "files" in npz.files else [f"{i:05d}" for i in range(len(images))]
                )
        except (ValueError, OSError, zlib.error) as exc:
            raise InputError(f"{source}: not a readable npz ({exc})") from exc
    else:
        raise InputError(f"{source}: CIFAR-10 file or folder not found")
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise InputError(f"{source}: images must be uint8 [N, H, W, 3], got {images.dtype} {list(images.shape)}")
    if len(labels) != len(images) or len(files) != len(images):
        raise InputError(f"{source}: {len(images)} images, {len(labels)} labels, {len(files)} file names")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise InputError(f"{source}: labels outside 0..{len(class_names) - 1}")
    keep = np.arange(len(images))
    if per_class is not None:
        chosen = []
        for c in range(len(class_names)):
            members = np.flatnonzero(labels == c)
            if len(members) > per_class:
                members = np.sort(_class_rng(seed, class_names[c]).choice(members, size=per_class, replace=False))
            chosen.append(members)
        keep = np.sort(np.concatenate(chosen)) if chosen else keep
    images = images[keep]
    labels = labels[keep]
    ids = [files[i] for i in keep]
    if len(set(ids)) != len(ids):
        ids = [f"{i:05d}_{f}" for i, f in zip(keep, ids)]
    n_resized = 0
    if size is not None and size != images.shape[1]:
        images = np.stack([resize_centre_crop(Image.fromarray(im), size)[0] for im in images]).astype(np.uint8)
        n_resized = len(images)
    table = ItemTable(
        ids=ids,
        columns={
            "label": [class_names[int(index)] for index in labels],
            "group": [""] * len(ids),
            "class_index": [str(int(index)) for index in labels],
        },
    )
    summary = {
        "source": str(source),
        "split": split if source.is_dir() else "file",
        "n_read": int(len(files)),
        "n_kept": len(ids),
        "class_names": class_names,
        "size": int(images.shape[1]),
        "n_resized": n_resized,
        "dropped": {"subsampled": int(len(files) - len(ids))},
    }
    return table, np.ascontiguousarray(images), summary


def digits_images(
    size: int = 32, per_class: int | None = None, seed: int = 0
) -> tuple[ItemTable, np.ndarray, dict[str, Any]]:
    """scikit-learn's 8x8 digits (ships with the package, offline) as RGB [N, size, size, 3], labels '0'-'9'."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    # Pixel values are 0-16; scale to 0-255 (the originals are dark-on-light inverted: keep them as they are).
    grey = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    targets = digits.target.astype(np.int64)
    keep = np.arange(len(grey))
    if per_class is not None:
        chosen = []
        for c in range(10):
            members = np.flatnonzero(targets == c)
            if len(members) > per_class:
                members = np.sort(_class_rng(seed, str(c)).choice(members, size=per_class, replace=False))
            chosen.append(members)
        keep = np.sort(np.concatenate(chosen))
    images = np.stack(
        [np.asarray(resize_centre_crop(Image.fromarray(grey[i]).convert("RGB"), size)[0], dtype=np.uint8) for i in keep]
    )
    table = ItemTable(
        ids=[f"digit_{i:04d}" for i in keep],
        columns={"label": [str(int(targets[i])) for i in keep], "group": [""] * len(keep)},
    )
    summary = {
        "source": "sklearn.datasets.load_digits",
        "n_read": int(len(grey)),
        "n_kept": int(len(keep)),
        "size": size,
        "n_upscaled": int(len(keep)) if size > 8 else 0,
        "dropped": {"subsampled": int(len(grey) - len(keep))},
    }
    return table, images, summary
