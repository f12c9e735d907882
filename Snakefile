# hidden-geometry: per-layer geometry of transformer representations (Valeriani et al., NeurIPS 2023).
# Run:  snakemake --cores 2 --configfile config/demo.yaml      (config/README.md documents every key)
from snakemake.utils import min_version

min_version("9.0")


report: "workflow/report/workflow.rst"


# No `configfile:` directive on purpose: Snakemake would merge it with the one given on the command line, mixing
# the paper's datasets into the demo. Pass exactly one: --configfile config/demo.yaml (or config/config.yaml).
include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/geometry.smk"
include: "workflow/rules/probe.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/studies.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
