"""The `hidden-geometry` command: JSON results, and one-line errors with exit status 2 for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hidden_geometry.cli import main


def cube(n=400, d=2, dim=5, seed=0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    Z = np.zeros((n, dim))
    Z[:, :d] = rng.uniform(size=(n, d))
    return (Z @ q.T).astype(np.float32)


def run(capsys, *args):
    status = main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def emb(tmp_path):
    path = tmp_path / "emb.npy"
    np.save(path, cube())
    return path


def test_id_twonn(capsys, emb):
    status, out, err = run(capsys, "id", emb)
    assert status == 0 and err == ""
    result = json.loads(out)
    assert {"id", "err", "n", "duplicates"} <= set(result)
    assert result["n"] == 400 and result["duplicates"] == 0
    assert 1.7 < result["id"] < 2.3


def test_id_gride_lists_scales_and_choice(capsys, emb):
    status, out, _ = run(capsys, "id", emb, "--estimator", "gride", "--max-rank", "32")
    result = json.loads(out)
    assert status == 0
    assert [s["n2"] for s in result["scales"]] == [2, 4, 8, 16, 32]
    assert all({"n1", "n2", "scale", "id", "err"} <= set(s) for s in result["scales"])
    assert result["chosen_scale"] in result["scales"] and result["id"] == result["chosen_scale"]["id"]


def test_id_counts_duplicates(capsys, tmp_path):
    X = cube()
    path = tmp_path / "dup.npz"
    np.savez(path, hidden=np.concatenate([X, X[:40]]))
    _, out, _ = run(capsys, "id", path, "--key", "hidden", "--fraction", "0.8")
    result = json.loads(out)
    assert result["duplicates"] == 40 and result["n"] == 400 and result["fraction"] == 0.8


def test_knn_writes_indices_and_distances(capsys, emb, tmp_path):
    out_path = tmp_path / "graph.npz"
    status, out, _ = run(capsys, "knn", emb, "-k", "7", "-o", out_path)
    assert status == 0 and json.loads(out)["k"] == 7
    with np.load(out_path) as data:
        indices, distances = data["indices"], data["distances"]
    assert indices.dtype == np.int64 and indices.shape == (400, 7)
    assert distances.dtype == np.float64 and distances.shape == (400, 7)
    assert not np.any(indices == np.arange(400)[:, None])
    X = np.load(emb).astype(np.float64)
    np.testing.assert_allclose(distances[:, 0], np.linalg.norm(X - X[indices[:, 0]], axis=1), rtol=1e-12)


def test_overlap_two_files_and_labels(capsys, emb, tmp_path):
    other = tmp_path / "other.npy"
    np.save(other, np.load(emb) * 2.0)
    status, out, _ = run(capsys, "overlap", emb, other, "-k", "5")
    assert status == 0 and json.loads(out)["overlap"] == 1.0
    labels = tmp_path / "labels.txt"
    X = np.load(emb)
    labels.write_text("".join(f"{int(x > 0)}\n" for x in X[:, 0]), encoding="utf-8")
    groups = tmp_path / "groups.txt"
    groups.write_text("".join(f"g{i // 4}\n" for i in range(400)), encoding="utf-8")
    status, out, _ = run(capsys, "overlap", emb, "--labels", labels, "-k", "5")
    plain = json.loads(out)["overlap"]
    assert status == 0 and 0.5 < plain <= 1.0
    status, out, _ = run(capsys, "overlap", emb, "--labels", labels, "-k", "5", "--exclude", groups)
    result = json.loads(out)
    assert status == 0 and result["excluded_groups"] and 0 <= result["overlap"] <= 1


def bad_files(tmp_path):
    """(name, file, extra args, expected words in the error) for every bad-input case."""
    cases = []
    p = tmp_path / "one_d.npy"
    np.save(p, np.zeros(10))
    cases.append(("not 2-D", p, [], "2-D"))
    p = tmp_path / "nan.npy"
    X = cube(50)
    X[7, 1] = np.nan
    np.save(p, X)
    cases.append(("NaN row", p, [], "rows 7"))
    p = tmp_path / "inf.npy"
    X = cube(50)
    X[3, 0] = np.inf
    np.save(p, X)
    cases.append(("inf row", p, [], "NaN or inf"))
    p = tmp_path / "few.npy"
    np.save(p, cube(5))
    cases.append(("fewer than k+1 points", p, ["-k", "5"], "k + 1"))
    p = tmp_path / "empty.npy"
    p.write_bytes(b"")
    cases.append(("empty file", p, [], "empty"))
    p = tmp_path / "garbage.npy"
    p.write_bytes(b"this is not numpy")
    cases.append(("unreadable file", p, [], "not a readable"))
    p = tmp_path / "zero_rows.npy"
    np.save(p, np.zeros((0, 4), dtype=np.float32))
    cases.append(("zero rows", p, [], "empty array"))
    cases.append(("missing file", tmp_path / "nope.npy", [], "no such file"))
    p = tmp_path / "keys.npz"
    np.savez(p, a=cube(20), b=cube(20))
    cases.append(("npz without --key", p, [], "--key"))
    cases.append(("npz wrong key", p, ["--key", "c"], "no array named 'c'"))
    return cases


@pytest.mark.parametrize("index", range(10))
def test_bad_input_exits_2_with_one_line(capsys, tmp_path, index):
    name, path, extra, words = bad_files(tmp_path)[index]
    command = ["knn", path, "-o", tmp_path / "out.npz"] + (extra if "-k" in extra else ["-k", "3"] + extra)
    status, out, err = run(capsys, *command)
    assert status == 2, name
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hidden-geometry: error:"), err
    assert words in lines[0], (name, lines[0])
    assert not (tmp_path / "out.npz").exists()


def test_label_count_mismatch_and_empty_label(capsys, emb, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("a\n" * 399, encoding="utf-8")
    status, _, err = run(capsys, "overlap", emb, "--labels", labels, "-k", "3")
    assert status == 2 and "399 labels for 400 rows" in err
    labels.write_text("a\n" * 10 + "\n" + "b\n" * 389, encoding="utf-8")
    status, _, err = run(capsys, "overlap", emb, "--labels", labels, "-k", "3")
    assert status == 2 and ":11: empty line" in err
    labels.write_bytes(b"\xff\xfe\n" * 400)
    status, _, err = run(capsys, "overlap", emb, "--labels", labels, "-k", "3")
    assert status == 2 and "not UTF-8" in err


def test_overlap_shape_mismatch(capsys, emb, tmp_path):
    other = tmp_path / "other.npy"
    np.save(other, cube(300))
    status, _, err = run(capsys, "overlap", emb, other, "-k", "3")
    assert status == 2 and "300 rows" in err


def test_entry_point_prints_no_traceback(tmp_path):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros(3))
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src") + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-m", "hidden_geometry.cli", "id", str(bad)], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = subprocess.run([sys.executable, "-m", "hidden_geometry.cli", "id"], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr  # argparse usage errors also exit 2


def test_every_argument_has_help_with_an_example():
    import argparse

    from hidden_geometry.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(subparsers.choices) == {"id", "knn", "overlap", "layers"}
    for name, sub in [("", parser), *subparsers.choices.items()]:
        for action in sub._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            assert action.help and "example" in action.help, (name, action.dest)
        assert sub is parser or "examples:" in sub.epilog


def test_knn_process_loads_neither_pandas_nor_scipy(tmp_path):
    # Every `hidden-geometry knn` process pays for its imports (the workflow starts one per layer): pandas and
    # scipy cost about 0.4 s there and the graph needs neither (numba may load scipy's BLAS later, lazily); numba
    # itself is imported by the graph's background loader, not when the package is imported.
    np.save(tmp_path / "X.npy", cube(200))
    code = ("import sys; from hidden_geometry.cli import build_parser, main; build_parser(); "
            "import hidden_geometry.geometry; assert 'numba' not in sys.modules, 'numba at import'; "
            f"main(['knn', {str(tmp_path / 'X.npy')!r}, '-k', '5', '-o', {str(tmp_path / 'g.npz')!r}]); "
            "print(sorted(m for m in ('pandas', 'scipy.optimize', 'scipy.signal', 'scipy.special') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "g.npz").exists()


def test_building_the_parser_does_not_import_torch():
    # `hidden-geometry knn` reads its rows on a thread while torch (about 1.1 s, mostly holding the GIL) is imported
    # for the graph: that overlap exists only if nothing before `run_knn` imports torch. The `layers` options take
    # their defaults from the torch-free `analysis.defaults`, not from the analysis modules.
    code = ("import sys; from hidden_geometry.cli import build_parser; build_parser(); "
            "import hidden_geometry.analysis; print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_console_command_ends_quickly_with_its_status_and_full_output(tmp_path):
    # The installed command ends with os._exit after `main` (no interpreter teardown): its status, its JSON line on
    # a pipe (block-buffered, so only an explicit flush delivers it) and its output file must all still be there.
    emb = tmp_path / "emb.npy"
    np.save(emb, cube(300))
    command = Path(sys.executable).parent / "hidden-geometry"
    assert command.exists(), f"{command}: the console script is missing (make install)"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}  # buffered, as usual
    done = subprocess.run([str(command), "knn", str(emb), "-k", "4", "-o", str(tmp_path / "g.npz")],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["k"] == 4
    with np.load(tmp_path / "g.npz") as graph:
        assert graph["indices"].shape == (300, 4)
    bad = subprocess.run([str(command), "knn", str(tmp_path / "absent.npy"), "-k", "4", "-o", str(tmp_path / "x.npz")],
                         capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and bad.stderr.startswith("hidden-geometry: error:") and bad.stdout == ""
    assert not (tmp_path / "x.npz").exists()


def test_knn_reads_its_input_on_a_thread_with_the_same_result_and_errors(capsys, emb, tmp_path):
    # `knn` reads the rows on a thread while torch is imported: the graph is the library's graph of the file as
    # read in the caller's thread, and the reader's own error (type and message) reaches the caller.
    from hidden_geometry.embeddings import load_embeddings
    from hidden_geometry.geometry import knn_graph

    status, _, _ = run(capsys, "knn", emb, "-k", "7", "-o", tmp_path / "graph.npz")
    expected = knn_graph(load_embeddings(emb, None), 7)
    with np.load(tmp_path / "graph.npz") as data:
        assert status == 0 and np.array_equal(data["indices"], expected.indices)
        assert np.array_equal(data["distances"].view(np.int64), expected.distances.view(np.int64))
    status, out, err = run(capsys, "knn", tmp_path / "absent.npy", "-k", "7", "-o", tmp_path / "x.npz")
    assert status == 2 and out == "" and "no such file" in err and "Traceback" not in err
