# facecover workflow: face scans and photos -> printable wound covers.
# Rules only wire files to `facecover <stage>` commands; algorithms live in src/facecover/.

import sys

from snakemake.utils import min_version, validate

from facecover.config_check import config_problems

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


_problems = config_problems(config, "workflow/schemas/config.schema.yaml")
if _problems:
    print("\n".join(f"facecover: config error: {p}" for p in _problems), file=sys.stderr)
    sys.exit(1)
validate(config, "workflow/schemas/config.schema.yaml")  # also fills in the schema's defaults


envvars:
    "PATH",


include: "workflow/rules/common.smk"


wildcard_constraints:
    subject="|".join(SUBJECTS + list(PATIENTS)),
    renders="|".join(SUBJECTS + ["pool"]),


include: "workflow/rules/data.smk"
include: "workflow/rules/scars.smk"
include: "workflow/rules/encoder.smk"
include: "workflow/rules/learn.smk"
include: "workflow/rules/covers.smk"
include: "workflow/rules/infer.smk"
include: "workflow/rules/mark.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        expand("results/registered/{subject}.ply", subject=SUBJECTS),
        "results/splits.csv",
        "results/pool/identities.npz",
        expand("results/report/renders/{subject}.png", subject=SUBJECTS),
        "results/renders/pool",
        "results/encoder/arcface.onnx",
        "results/embeddings/pool.npz",
        expand("results/embeddings/{subject}.npz", subject=SUBJECTS),
        expand("results/covers_reference/prints/{subject}.stl", subject=TEST_SUBJECTS),
        expand("results/report/covers_reference/{subject}.png", subject=TEST_SUBJECTS),
        "results/report/registration.csv",
        "results/report/covers_reference.csv",
        "results/report/encoder.csv",
        "results/metrics/table.csv",
        expand("results/prints/{subject}.stl", subject=TEST_SUBJECTS + list(PATIENTS)),
        expand("results/report/covers/{subject}.png", subject=TEST_SUBJECTS + list(PATIENTS)),
        expand("results/mark/{subject}.html", subject=list(PATIENTS)),
        "results/metrics/covers.csv",
        "results/report/learning/heatmap.png",
        "results/report/stages.csv",
    default_target: True
