"""`snakemake --lint` is clean, and the dry run of the demo plans the stages in order without running anything."""

from __future__ import annotations

from pathlib import Path

from .conftest import run_snakemake


def test_lint_is_clean(tmp_path: Path) -> None:
    run = run_snakemake(tmp_path, "--lint", timeout=120)
    assert run.returncode == 0, run.output[-3000:]
    assert "Congratulations, your workflow is in a good condition!" in run.output
    assert "Lints for" not in run.output


def test_dry_run_plans_the_data_stage_first(tmp_path: Path) -> None:
    run = run_snakemake(tmp_path, "--dry-run", timeout=120)
    assert run.returncode == 0, run.output[-3000:]
    # before the checkpoints run, the plan holds the dataset preparation and the summaries
    assert run.jobs_of("prepare_dataset") and run.jobs_of("prepare_image_dataset")
    assert "summary_table" in run.output and not (tmp_path / "results").exists()
