# Shared helpers: subject list, stage code files (so code changes rerun their stage).

import json
import os
import sys
from pathlib import Path

# Rules call the `facecover` command installed next to the Python running
# Snakemake (e.g. .venv/bin), also when the venv is not activated.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")

SCAN_SUFFIXES = (".ply", ".obj", ".stl", ".off")


def _subjects():
    if config["scans"]["source"] == "synthetic":
        return [f"subject{i:02d}" for i in range(1, config["cohort"]["n_subjects"] + 1)]
    folder = Path(config["scans"].get("dir", ""))
    if not folder.is_dir():
        raise WorkflowError(f"scans.dir: folder '{folder}' does not exist (scans.source is 'dir')")
    names = sorted({p.stem for p in folder.iterdir() if p.suffix.lower() in SCAN_SUFFIXES})
    if not names:
        raise WorkflowError(f"scans.dir: no .ply/.obj/.stl/.off scans in '{folder}'")
    return names


SUBJECTS = _subjects()


# Rules that train or embed ask the cluster for one GPU when `gpu: true` (they run on the CPU without one).
GPUS = 1 if config["gpu"] else 0


def settings_json(block, *not_settings):
    """A config block as its stage's JSON `--settings` object, without the keys the rules use themselves.
    Keys are sorted, so the string (a rule parameter) changes only when a value does."""
    return json.dumps({k: v for k, v in config[block].items() if k not in not_settings}, sort_keys=True)


SHARED_MODULES = ("files", "meshtools")  # helpers every stage uses


def code(*modules):
    """Source files of the package modules behind a step (plus the shared helpers); editing one reruns that step."""
    return [f"src/facecover/{m}.py" for m in dict.fromkeys(modules + SHARED_MODULES)]


def raw_scan(wildcards):
    if config["scans"]["source"] == "synthetic":
        return f"results/scans/{wildcards.subject}.ply"
    folder = Path(config["scans"]["dir"])
    for suffix in SCAN_SUFFIXES:
        if (folder / f"{wildcards.subject}{suffix}").exists():
            return str(folder / f"{wildcards.subject}{suffix}")
    raise WorkflowError(f"scans.dir: no scan for subject '{wildcards.subject}' in '{folder}'")


def truth_arg(wildcards):
    if config["scans"]["source"] == "synthetic":
        return f"--truth results/truth/{wildcards.subject}.npz"
    return ""


def encoder_inputs(wildcards):
    """A configured ArcFace ONNX is used as is; otherwise the encoder is trained on the pool renders."""
    if config["arcface"]["model"]:
        return {"model": config["arcface"]["model"]}
    return {"renders": "results/renders/pool"}


def renders_to_embed(wildcards):
    """A subject's injured renders (every variant and view), or the pool's render folder."""
    if wildcards.renders == "pool":
        return {"renders": "results/renders/pool"}
    return {"images": expand(f"results/renders/{wildcards.renders}/{{stem}}.png", stem=RENDER_STEMS)}


def embed_stems(wildcards):
    """Only the renders of the configured variants and views (a folder may hold stale ones)."""
    return "" if wildcards.renders == "pool" else "--stems " + " ".join(RENDER_STEMS)
