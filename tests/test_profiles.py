"""The SLURM profile: what it sets, and what Snakemake and the SLURM plugin make of it for the demo's jobs.

The dry run needs the prepared datasets (extraction shards only appear after the data checkpoints), so one test
module fixture prepares the demo's datasets locally once (seconds), then runs `snakemake --dry-run` with
`--profile profiles/slurm` as docs/slurm.md says to. From the resources Snakemake prints for each job, the SLURM
plugin's own `get_submit_command`/`set_gres_string` build the `sbatch` arguments, so the test fails if extraction
stops getting its GPU, its GPU partition or its CPUs, in the profile, in the rule or in the plugin.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SLURM_PROFILE = PROJECT_ROOT / "profiles" / "slurm"
DEMO_CONFIG = PROJECT_ROOT / "config" / "demo.yaml"
GPU_RULES = ("extract_shard",)
PLACEHOLDER = re.compile(r"^CHANGE-ME-")


def load_profile() -> dict:
    return yaml.safe_load((SLURM_PROFILE / "config.yaml").read_text(encoding="utf-8"))


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    """A `snakemake` call on the project's workflow from `workdir` (results and caches land there)."""
    return [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(PROJECT_ROOT / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(DEMO_CONFIG),
        *args,
    ]


def run(command: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{shlex.join(command)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def parse_value(text: str):
    """A resource value as Snakemake printed it: int where it is one, else the string."""
    return int(text) if re.fullmatch(r"-?\d+", text) else text


def dry_run_jobs(output: str) -> list[SimpleNamespace]:
    """Jobs of a `snakemake --dry-run` printout: rule name, wildcards, threads and resources of each."""
    jobs = []
    current = None
    for line in output.splitlines():
        header = re.match(r"^(?:local)?(?:rule|checkpoint) (\w+):$", line.strip())
        if header:
            current = SimpleNamespace(rule=header.group(1), threads=1, resources={}, wildcards="")
            jobs.append(current)
            continue
        if current is None:
            continue
        field = re.match(r"^\s+(threads|resources|wildcards): (.*)$", line)
        if not field:
            continue
        key, value = field.groups()
        if key == "threads":
            current.threads = int(value)
        elif key == "wildcards":
            current.wildcards = value
        else:
            pairs = [p.split("=", 1) for p in value.split(", ")]
            current.resources = {k: parse_value(v) for k, v in pairs}
    return jobs


class PluginResources(dict):
    """Resources as the plugin reads them: `.get(name)` and attribute access."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError as error:
            raise AttributeError(name) from error


def sbatch_arguments(job: SimpleNamespace) -> str:
    """The sbatch line snakemake-executor-plugin-slurm builds for this job (before the wrapped command)."""
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    plugin_job = SimpleNamespace(resources=PluginResources(job.resources), threads=job.threads, name=job.rule)
    params = {
        "run_uuid": "test-run",
        "slurm_logfile": "/tmp/%j.log",
        "comment_str": f"rule_{job.rule}",
        # as the executor builds them from the slurm_account / slurm_partition resources (no validation here)
        "account": f" -A {shlex.quote(str(job.resources['slurm_account']))}",
        "partition": f" -p {shlex.quote(str(job.resources['slurm_partition']))}",
        "workdir": "/tmp",
    }
    return get_submit_command(plugin_job, params) + set_gres_string(plugin_job)


# ---- the profile file itself -------------------------------------------------------------------------------


def test_profile_uses_the_slurm_executor_with_retries_and_placeholders():
    profile = load_profile()
    assert profile["executor"] == "slurm"
    assert profile["retries"] >= 1, "memory/time grow with `attempt` only if failed jobs are retried"
    defaults = profile["default-resources"]
    # the user must set these: the placeholders fail loudly on a real cluster (the plugin validates the account)
    assert PLACEHOLDER.match(defaults["slurm_account"])
    assert PLACEHOLDER.match(defaults["slurm_partition"])
    for rule in GPU_RULES:
        assert PLACEHOLDER.match(profile["set-resources"][rule]["slurm_partition"])
        assert profile["set-resources"][rule]["slurm_partition"] != defaults["slurm_partition"]


@pytest.mark.parametrize("key", ["mem_mb", "runtime"])
def test_memory_and_runtime_grow_with_attempt(key):
    profile = load_profile()
    expressions = [profile["default-resources"][key]] + [profile["set-resources"][r][key] for r in GPU_RULES]
    for expression in expressions:
        # the same evaluation Snakemake does for resource expressions: python with `attempt` in scope
        first, second, third = (eval(str(expression), {}, {"attempt": a}) for a in (1, 2, 3))
        assert 0 < first < second < third, f"{key}: {expression} does not grow with attempt"


def test_profile_leaves_job_needs_to_the_rules():
    """The rules say that extraction needs a GPU (`gpu=1`); the profile only routes it (partition, CPUs)."""
    profile = load_profile()
    rules_text = (PROJECT_ROOT / "workflow" / "rules" / "extract.smk").read_text(encoding="utf-8")
    assert re.search(r"rule extract_shard:(.|\n)*?resources:\s*\n\s*gpu=1", rules_text)
    for rule in GPU_RULES:
        assert "gpu" not in profile["set-resources"][rule], "the rule itself declares its GPU"
    assert "localrules" not in profile and "resources" not in profile


# ---- dry run of the demo through the profile ---------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_dry_run(tmp_path_factory) -> list[SimpleNamespace]:
    """Jobs of a dry run of the demo with profiles/slurm, after preparing its datasets locally."""
    workdir = tmp_path_factory.mktemp("slurm-dry-run")
    config = yaml.safe_load(DEMO_CONFIG.read_text(encoding="utf-8"))
    results = config.get("results_dir", "results")
    summaries = [f"{results}/{name}/dataset.json" for name in config["datasets"]]
    # data checkpoints only: the dry run can then list every extraction shard with its resources
    run(snakemake_command(workdir, "--workflow-profile", "none", "--cores", "2", *summaries), workdir, 300)
    # --cores: a dry run caps threads at its local cores (1 by default); SLURM jobs are not capped that way
    dry = run(
        snakemake_command(workdir, "--workflow-profile", "none", "--profile", str(SLURM_PROFILE), "--dry-run",
                          "--cores", "64"),
        workdir,
        300,
    )
    jobs = dry_run_jobs(dry.stdout + dry.stderr)
    assert jobs, f"no jobs parsed from the dry run:\n{dry.stdout[-3000:]}"
    return jobs


@pytest.mark.slow
def test_dry_run_gives_every_gpu_job_its_gpu_partition_and_cpus(demo_dry_run):
    profile = load_profile()
    gpu_jobs = [job for job in demo_dry_run if job.rule in GPU_RULES]
    assert len(gpu_jobs) >= 3, "the demo should have several extraction shards"
    for job in gpu_jobs:
        wanted = profile["set-resources"][job.rule]
        assert job.resources["gpu"] == 1
        assert job.resources["slurm_partition"] == wanted["slurm_partition"]
        assert job.resources["cpus_per_gpu"] == wanted["cpus_per_gpu"]
        assert job.resources["mem_mb"] == eval(str(wanted["mem_mb"]), {}, {"attempt": 1})
        assert job.threads == profile["set-threads"][job.rule]
        sbatch = sbatch_arguments(job)
        assert "--gpus=1" in sbatch, sbatch
        assert f"-p {wanted['slurm_partition']}" in sbatch, sbatch
        assert f"--cpus-per-gpu={wanted['cpus_per_gpu']}" in sbatch, sbatch
        assert f"-A {profile['default-resources']['slurm_account']}" in sbatch, sbatch


@pytest.mark.slow
def test_dry_run_keeps_cpu_jobs_off_the_gpu_partition(demo_dry_run):
    profile = load_profile()
    cpu_jobs = [job for job in demo_dry_run if job.rule not in GPU_RULES and job.rule != "all"]
    assert "gather_embeddings" in {job.rule for job in cpu_jobs}
    for job in cpu_jobs:
        assert not job.resources.get("gpu"), f"{job.rule} asks for a GPU"
        assert job.resources["slurm_partition"] == profile["default-resources"]["slurm_partition"]
        sbatch = sbatch_arguments(job)
        assert "--gpus" not in sbatch and "--gres" not in sbatch, sbatch
        assert f"--cpus-per-task={job.threads}" in sbatch, sbatch
