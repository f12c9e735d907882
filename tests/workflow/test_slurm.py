"""The demo through profiles/slurm on a real SLURM cluster (the one-node cluster of .ci/slurm-one-node.sh).

Skips with the reason where `sbatch` is absent or the cluster does not answer, unless HG_REQUIRE_SLURM=1 (set by
.ci/run), where that is a failure. The run uses the real profile with only what this node needs changed (see
`make_test_profile`): account `test`, the cluster's default partition, no GPU (the node has none), `squeue` for job
status (no accounting database here), kept SLURM logs. One analysis of the demo (tests/workflow/slurm_overrides.yaml)
keeps it near 20 jobs; its tables must equal those of the local demo run (`demo_run` fixture).

Time: about 6 minutes for the run and 2 for the rerun on 2 cores shared with other work; each job is
mostly Python and torch start-up, and 2 cores run one or two jobs at a time. SLURM's per-job logs are in
<workdir>/.snakemake/slurm_logs/rule_<rule>/<wildcards>/<jobid>.log, the rules' logs in <workdir>/results/logs/.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SLURM_PROFILE = PROJECT_ROOT / "profiles" / "slurm" / "config.yaml"
DEMO_CONFIG = PROJECT_ROOT / "config" / "demo.yaml"
OVERRIDES = Path(__file__).with_name("slurm_overrides.yaml")
DATASET, MODEL = "demo_digits", "igpt_tiny_random"
RUN_TIMEOUT_S = 900
# squeue reasons of a pending job that no amount of waiting fixes (more CPUs/memory/GPUs than any node has)
NEVER_RUNS = {"PartitionConfig", "ReqNodeNotAvail", "BadConstraints", "PartitionNodeLimit", "AssocMaxCpuPerJobLimit"}
# float columns of layers.tsv / layer_choice.json: the same computation on the same machine, so equal up to the
# last bits that thread scheduling may change
REL_TOL = 1e-9

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def slurm_unavailable_reason() -> str | None:
    """Why no SLURM job can run here, or None when sbatch is present and the cluster answers."""
    if shutil.which("sbatch") is None:
        return "sbatch not found (start a one-node cluster: bash .ci/slurm-one-node.sh start)"
    try:
        answer = subprocess.run(["sinfo", "-h", "-o", "%P %a"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"sinfo failed: {error}"
    if answer.returncode != 0 or "up" not in answer.stdout:
        return f"SLURM does not answer or has no partition up: {answer.stderr.strip() or answer.stdout.strip()}"
    return None


@pytest.fixture(scope="module")
def slurm_cluster() -> SimpleNamespace:
    """Default partition and CPUs per node of a SLURM cluster that answers; skip (or fail under
    HG_REQUIRE_SLURM=1) otherwise."""
    reason = slurm_unavailable_reason()
    if reason:
        if os.environ.get("HG_REQUIRE_SLURM") == "1":
            pytest.fail(f"HG_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(reason)
    lines = subprocess.run(["sinfo", "-h", "-o", "%P %c"], capture_output=True, text=True, check=True).stdout
    rows = [line.split() for line in lines.splitlines() if line.strip()]
    default = next((row for row in rows if row[0].endswith("*")), rows[0])
    return SimpleNamespace(partition=default[0].rstrip("*"), cpus=int(default[1].rstrip("+")))


def make_test_profile(workdir: Path, cluster: SimpleNamespace) -> Path:
    """profiles/slurm with only what this one-node test cluster needs changed; returns the profile folder."""
    profile = yaml.safe_load(SLURM_PROFILE.read_text(encoding="utf-8"))
    profile["default-resources"].update(
        slurm_account="test",  # any name: no accounting database to check it against
        slurm_partition=cluster.partition,
        mem_mb="1000 * attempt",  # 2 jobs side by side on a small node; still grows with attempt
    )
    for rule, resources in profile["set-resources"].items():
        resources["slurm_partition"] = cluster.partition
        resources["mem_mb"] = "2000 * attempt"
        if "cpus_per_gpu" in resources:
            resources["gpu"] = 0  # the node has no GPU: overrides the rule's gpu=1, so no --gpus flag
    # the rules' own threads, but never more than a node has: SLURM would keep such a job pending for ever
    profile.pop("set-threads", None)
    profile.update({
        "max-threads": cluster.cpus,
        "slurm-status-command": "squeue",  # no accounting: squeue sees finished jobs for MinJobAge
        "slurm-init-seconds-before-status-checks": 1,
        "slurm-keep-successful-logs": True,
        "jobs": 4,
        "latency-wait": 10,
    })
    folder = workdir / "test-profile"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False), encoding="utf-8")
    return folder


def slurm_config(workdir: Path) -> Path:
    """config/demo.yaml with the top-level keys of OVERRIDES replaced (not merged: its empty `studies` drops the
    demo's study, whose models this run does not analyse), written into `workdir`."""
    config = yaml.safe_load(DEMO_CONFIG.read_text(encoding="utf-8"))
    config.update(yaml.safe_load(OVERRIDES.read_text(encoding="utf-8")))
    path = workdir / "slurm-config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def run_snakemake(workdir: Path, profile: Path, *targets: str) -> str:
    """Run the workflow through SLURM from `workdir`; fail fast (and cancel its jobs) if SLURM can never start
    one of them, instead of waiting for the timeout. Returns Snakemake's output."""
    command = [
        sys.executable, "-m", "snakemake",
        *targets,  # first: --configfile takes every word after it
        "--snakefile", str(PROJECT_ROOT / "Snakefile"),
        "--directory", str(workdir),
        "--profile", str(profile),
        "--workflow-profile", "none",
        "--configfile", str(slurm_config(workdir)),
    ]
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("SLURM_JOB_ID", None)
    # as the local demo run (tests/workflow/conftest.py); sbatch --export=ALL hands these to every job
    for name, value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "2"}.items():
        env.setdefault(name, value)
    log = workdir / f"snakemake-{time.strftime('%H%M%S')}.out"
    deadline = time.monotonic() + RUN_TIMEOUT_S
    problem = ""
    with log.open("w", encoding="utf-8") as out:
        process = subprocess.Popen(command, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            while process.poll() is None:
                stuck = [job for job in slurm_jobs(workdir) if job.state == "PENDING" and job.reason in NEVER_RUNS]
                if stuck or time.monotonic() > deadline:
                    problem = (f"SLURM will never run {[(j.id, j.comment, j.reason) for j in stuck]}" if stuck
                               else f"timeout after {RUN_TIMEOUT_S} s")
                    break
                time.sleep(5)
        finally:
            if process.poll() is None:  # stuck, timed out, or the test itself was interrupted
                stop_run(process, workdir)
    output = log.read_text(encoding="utf-8")
    assert not problem and process.returncode == 0, (
        f"{problem or 'snakemake failed'}: {shlex.join(command)} (full output: {log}; SLURM logs: "
        f"{workdir}/.snakemake/slurm_logs):\n{output[-6000:]}"
    )
    return output


def stop_run(process: subprocess.Popen, workdir: Path) -> None:
    """End the main Snakemake process this test started (it may ignore SIGTERM while jobs run) and cancel the
    SLURM jobs it left in `workdir`."""
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    left = [job.id for job in slurm_jobs(workdir) if job.state in ("PENDING", "RUNNING", "CONFIGURING")]
    if left:
        subprocess.run(["scancel", *left], check=False)


def slurm_logs(workdir: Path, rule: str) -> list[Path]:
    return sorted((workdir / ".snakemake" / "slurm_logs" / f"rule_{rule}").rglob("*.log"))


def slurm_jobs(workdir: Path) -> list[SimpleNamespace]:
    """Jobs SLURM itself knows (squeue keeps finished ones for MinJobAge) that ran in `workdir`."""
    answer = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i|%T|%r|%k|%Z"], capture_output=True, text=True,
                            timeout=60)
    assert answer.returncode == 0, f"squeue failed: {answer.stderr.strip()}"
    out = answer.stdout
    jobs = []
    for line in out.splitlines():
        job_id, state, reason, comment, job_dir = line.split("|", 4)
        if Path(job_dir).resolve() == workdir.resolve():
            jobs.append(SimpleNamespace(id=job_id, state=state, reason=reason, comment=comment))
    return jobs


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster, tmp_path_factory) -> SimpleNamespace:
    """The demo analysis run through the SLURM profile; its workdir, results and timing."""
    workdir = tmp_path_factory.mktemp("slurm-run")
    profile = make_test_profile(workdir, slurm_cluster)
    targets = [f"results/{DATASET}/{MODEL}/layers.tsv", f"results/{DATASET}/{MODEL}/layer_choice.json"]
    start = time.perf_counter()
    output = run_snakemake(workdir, profile, *targets)
    seconds = time.perf_counter() - start
    print(f"\nSLURM demo run: {seconds:.0f} s; SLURM logs in {workdir}/.snakemake/slurm_logs, "
          f"rule logs in {workdir}/results/logs")
    return SimpleNamespace(workdir=workdir, profile=profile, results=workdir / "results", seconds=seconds,
                           output=output)


# ---- it really went through SLURM --------------------------------------------------------------------------


def test_extraction_shards_ran_as_separate_slurm_jobs(slurm_run):
    shards = sorted(p.name for p in (slurm_run.results / DATASET / MODEL / "shards").iterdir())
    assert len(shards) >= 2, f"expected several shards, got {shards}"  # the demo cuts its digits into 2
    logs = slurm_logs(slurm_run.workdir, "extract_shard")
    assert len(logs) == len(shards), f"one SLURM log per shard expected: {logs}"
    jobs = [job for job in slurm_jobs(slurm_run.workdir) if job.comment.startswith("rule_extract_shard")]
    assert sorted(job.comment for job in jobs) == sorted(
        f"rule_extract_shard_wildcards_{DATASET}_{MODEL}_{shard}" for shard in shards
    ), jobs
    assert {job.state for job in jobs} == {"COMPLETED"}
    # the SLURM log holds the job's own Snakemake output for that shard
    assert all("rule extract_shard:" in log.read_text(encoding="utf-8") for log in logs)


def executed_jobs(output: str) -> list[SimpleNamespace]:
    """Jobs the main Snakemake process started, from its output: rule, local or not, and the comment the SLURM
    plugin gives such a job (rule_<rule>[_wildcards_<values joined by _>])."""
    jobs = []
    lines = output.splitlines()
    for number, line in enumerate(lines):
        match = re.match(r"^(local)?(?:rule|checkpoint) (\w+):$", line.strip())
        if not match:
            continue
        values = []
        for following in lines[number + 1 : number + 12]:
            field = re.match(r"^\s+wildcards: (.*)$", following)
            if field:
                values = [pair.split("=", 1)[1] for pair in field.group(1).split(", ")]
                break
            if not following.startswith(" "):
                break
        rule = match.group(2)
        comment = f"rule_{rule}" + (f"_wildcards_{'_'.join(values)}" if values else "")
        jobs.append(SimpleNamespace(rule=rule, local=bool(match.group(1)), comment=comment))
    return jobs


def test_every_job_ran_on_slurm_and_local_rules_did_not(slurm_run):
    jobs = executed_jobs(slurm_run.output)
    remote = {job.comment for job in jobs if not job.local}
    local_rules = {job.rule for job in jobs if job.local}
    assert {"prepare_image_dataset", "extract_shard", "gather_embeddings", "summarize_model"} <= {
        job.rule for job in jobs if not job.local}
    # the jobs SLURM ran in this workdir are exactly the non-local jobs Snakemake started
    assert sorted(job.comment for job in slurm_jobs(slurm_run.workdir)) == sorted(remote)
    assert all(job.state == "COMPLETED" for job in slurm_jobs(slurm_run.workdir))
    # model building (like downloads) is a local rule: it ran beside the main process, never through sbatch
    assert "build_random_model" in local_rules
    assert not (slurm_run.workdir / ".snakemake" / "slurm_logs" / "rule_build_random_model").exists()
    assert (slurm_run.workdir / "resources" / "random_models" / MODEL).is_dir()


# ---- same outputs as the local run -------------------------------------------------------------------------


def read_tsv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def same_value(a, b) -> bool:
    """Equal, with floats (also floats written as text) compared to REL_TOL."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, str) and isinstance(b, str):
        try:
            a, b = float(a), float(b)
        except ValueError:
            return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)
    return a == b


def test_items_table_equals_local_run(slurm_run, demo_run):
    for name in ["items.tsv", "keep.npy"]:
        local, cluster = Path(demo_run) / DATASET / name, slurm_run.results / DATASET / name
        assert cluster.read_bytes() == local.read_bytes(), f"{name} differs from the local run"
    assert np.array_equal(np.load(slurm_run.results / DATASET / "images.npy"),
                          np.load(Path(demo_run) / DATASET / "images.npy"))


def test_gathered_embeddings_equal_local_run(slurm_run, demo_run):
    local = Path(demo_run) / DATASET / MODEL / "embeddings"
    cluster = slurm_run.results / DATASET / MODEL / "embeddings"
    assert (cluster / "ids.txt").read_text() == (local / "ids.txt").read_text()
    layer_files = sorted(p.name for p in local.glob("layer_*.npy"))
    assert layer_files and layer_files == sorted(p.name for p in cluster.glob("layer_*.npy"))
    for name in layer_files:
        a, b = np.load(cluster / name), np.load(local / name)
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7, err_msg=name)


def test_layer_tables_equal_local_run(slurm_run, demo_run):
    local, cluster = Path(demo_run) / DATASET / MODEL, slurm_run.results / DATASET / MODEL
    local_rows, cluster_rows = read_tsv(local / "layers.tsv"), read_tsv(cluster / "layers.tsv")
    assert len(cluster_rows) == len(local_rows) >= 2
    for row_local, row_cluster in zip(local_rows, cluster_rows):
        assert row_cluster.keys() == row_local.keys()
        differing = [k for k in row_local if not same_value(row_local[k], row_cluster[k])]
        diffs = [(k, row_local[k], row_cluster[k]) for k in differing]
        assert not differing, f"layer {row_local.get('layer')}: {diffs}"
    choice_local = json.loads((local / "layer_choice.json").read_text(encoding="utf-8"))
    choice_cluster = json.loads((cluster / "layer_choice.json").read_text(encoding="utf-8"))
    assert same_value(choice_cluster, choice_local), (choice_cluster, choice_local)


# ---- a failed shard is the only one redone --------------------------------------------------------------------


def test_rerun_after_a_failed_shard_redoes_only_that_shard(slurm_run):
    """The state a failed shard job leaves (Snakemake removes its output; gathering never ran) is completed by a
    rerun that submits that one shard and the gather; the other shards are kept as they are."""
    shards_dir = slurm_run.results / DATASET / MODEL / "shards"
    embeddings = slurm_run.results / DATASET / MODEL / "embeddings"
    shards = sorted(shards_dir.iterdir())
    failed = shards[1]
    kept = {p.name: (p / "manifest.json").stat().st_mtime_ns for p in shards if p != failed}
    before = {p.name: np.load(p) for p in sorted(embeddings.glob("layer_*.npy"))}
    logs_before = set(slurm_logs(slurm_run.workdir, "extract_shard"))
    shutil.rmtree(failed)
    shutil.rmtree(embeddings)

    output = run_snakemake(slurm_run.workdir, slurm_run.profile, str(embeddings.relative_to(slurm_run.workdir)))

    assert [job.comment for job in executed_jobs(output) if job.rule == "extract_shard"] == [
        f"rule_extract_shard_wildcards_{DATASET}_{MODEL}_{failed.name}"
    ]
    new_logs = set(slurm_logs(slurm_run.workdir, "extract_shard")) - logs_before
    assert len(new_logs) == 1 and failed.name in str(next(iter(new_logs))), sorted(new_logs)
    assert (failed / "manifest.json").is_file()
    assert {p.name: (p / "manifest.json").stat().st_mtime_ns for p in shards if p != failed} == kept
    assert sorted(before) == sorted(p.name for p in embeddings.glob("layer_*.npy"))
    for name, array in before.items():
        np.testing.assert_array_equal(np.load(embeddings / name), array, err_msg=name)
