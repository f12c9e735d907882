"""Workflow fixtures: a helper that runs Snakemake in a temporary folder, and one demo run per test session.

`demo_run` runs the whole DAG of config/demo.yaml once (`snakemake --cores 2` in a temporary working directory with
the repository's Snakefile) and returns its results folder; tests of outputs, reruns and the SLURM comparison reuse
it. Set HG_DEMO_WORKDIR to a folder of an earlier complete run to reuse it (development only).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SNAKEFILE = ROOT / "Snakefile"
DEMO_CONFIG = ROOT / "config" / "demo.yaml"
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
DEMO_TIMEOUT_S = 1200  # bounded: the demo takes a few minutes on 2 cores


@dataclass(frozen=True)
class SnakemakeRun:
    """What a Snakemake invocation did: exit status, its output, and the working directory."""

    returncode: int
    output: str
    workdir: Path
    seconds: float

    @property
    def results(self) -> Path:
        return self.workdir / "results"

    def jobs_of(self, rule: str) -> list[str]:
        """The `wildcards:` lines of every job of `rule` the run started (from Snakemake's job listing)."""
        jobs, current = [], None
        for line in self.output.splitlines():
            stripped = line.strip()
            if stripped.startswith(("rule ", "localrule ", "checkpoint ", "localcheckpoint ")):
                current = stripped.split()[1].rstrip(":")
                if current == rule:
                    jobs.append("")
            elif stripped.startswith("wildcards:") and current == rule and jobs:
                jobs[-1] = stripped.removeprefix("wildcards:").strip()
        return jobs


def snakemake_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{SNAKEMAKE.parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("OMP_NUM_THREADS", "2")
    return env


def run_snakemake(workdir: Path, *args: str, configfile: Path | None = DEMO_CONFIG, cores: int = 2,
                  timeout: float = DEMO_TIMEOUT_S) -> SnakemakeRun:
    """Run the repository's Snakefile in `workdir` (created) and capture everything it prints."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = [str(SNAKEMAKE), "-s", str(SNAKEFILE), "--directory", str(workdir), "--cores", str(cores)]
    if configfile is not None:
        command += ["--configfile", str(configfile)]
    command += list(args)
    started = time.monotonic()
    done = subprocess.run(command, cwd=workdir, env=snakemake_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False)
    return SnakemakeRun(done.returncode, done.stdout, workdir, time.monotonic() - started)


@pytest.fixture(scope="session")
def snakemake_runner():
    """`run_snakemake` for tests in other files (e.g. the SLURM comparison)."""
    return run_snakemake


@pytest.fixture(scope="session")
def demo_run_info(tmp_path_factory: pytest.TempPathFactory) -> SnakemakeRun:
    """The whole demo DAG, run once per session (or an earlier run named by HG_DEMO_WORKDIR)."""
    reuse = os.environ.get("HG_DEMO_WORKDIR")
    if reuse:
        workdir = Path(reuse)
        if not (workdir / "results" / "summary.tsv").is_file():
            pytest.fail(f"HG_DEMO_WORKDIR={reuse} holds no complete demo run")
        return SnakemakeRun(0, "", workdir, 0.0)
    run = run_snakemake(tmp_path_factory.mktemp("demo"))
    if run.returncode != 0:
        pytest.fail(f"demo run failed (exit {run.returncode}):\n{run.output[-6000:]}")
    print(f"\ndemo run: {run.seconds:.0f} s in {run.workdir}")
    return run


@pytest.fixture(scope="session")
def demo_run(demo_run_info: SnakemakeRun) -> Path:
    """The results folder of the session's demo run."""
    return demo_run_info.results
