# Shared helpers: subject list, stage code files (so code changes rerun their stage).

import json
import os
import re
import sys
from pathlib import Path

# Rules call the `facecover` command installed next to the Python running
# Snakemake (e.g. .venv/bin), also when the venv is not activated.
os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])

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

# The split is a rule output (results/splits.csv), and also computed here with the same function and settings
# so that rules can name the test subjects (covers are scored on them).
from facecover.split import split_subjects

SPLIT = split_subjects(SUBJECTS, config["split"]["ratios"], config["seed"])
TEST_SUBJECTS = sorted(s for s, which in SPLIT.items() if which == "test")
TRAIN_SUBJECTS = sorted(s for s, which in SPLIT.items() if which == "train")  # the fit's noise is measured on them

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg")


def _patients():
    """{patient id: folder} for every folder in patients.dir holding a scan and a photo."""
    folder = Path(config["patients"]["dir"])
    if not folder.is_dir():
        return {}
    out = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if sub.name in SUBJECTS:
            raise WorkflowError(f"patients.dir: patient '{sub.name}' has the name of a cohort subject")
        out[sub.name] = sub
    return out


def optional_patient_file(folder, stem, suffixes):
    for suffix in suffixes:
        if (Path(folder) / f"{stem}{suffix}").exists():
            return str(Path(folder) / f"{stem}{suffix}")
    return None


def patient_file(folder, stem, suffixes):
    found = optional_patient_file(folder, stem, suffixes)
    if found is None:
        raise WorkflowError(f"{folder}: no {stem} ({', '.join(f'{stem}{s}' for s in suffixes)}); a patient folder holds "
                            "scan.(ply|obj|stl|off) and photo.(png|jpg), optionally wound.(ply|npz|json)")
    return found


PATIENTS = _patients()


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
    if wildcards.subject in PATIENTS:
        return patient_file(PATIENTS[wildcards.subject], "scan", SCAN_SUFFIXES)
    if config["scans"]["source"] == "synthetic":
        return f"results/scans/{wildcards.subject}.ply"
    folder = Path(config["scans"]["dir"])
    for suffix in SCAN_SUFFIXES:
        if (folder / f"{wildcards.subject}{suffix}").exists():
            return str(folder / f"{wildcards.subject}{suffix}")
    raise WorkflowError(f"scans.dir: no scan for subject '{wildcards.subject}' in '{folder}'")


def truth_arg(wildcards):
    if config["scans"]["source"] == "synthetic" and wildcards.subject not in PATIENTS:
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
    return "" if wildcards.renders == "pool" else f"--stems {' '.join(RENDER_STEMS)}"


# Input and parameter functions of the learning, inference and cover rules.


def decoder_inputs(wildcards):
    """A configured decoder file is used as is (checked); otherwise the PCA of the pool's meshes."""
    if config["decoder"]["model"]:
        return {"model": config["decoder"]["model"]}
    return {"pool": "results/pool/identities.npz"}


def finetune_inputs(wildcards):
    """ssl experiments start from their SwAV trunk (and refit the head on the pool)."""
    fraction = EXPERIMENTS[wildcards.experiment]
    if fraction is None:
        return {}
    return {"swav": f"results/checkpoints/swav_{fraction}.pt", "pool": "results/pool/identities.npz",
            "pool_embeddings": "results/embeddings/pool.npz"}


def finetune_swav_args(wildcards, input):
    if EXPERIMENTS[wildcards.experiment] is None:
        return ""
    return f"--swav {input.swav} --pool {input.pool} --pool-embeddings {input.pool_embeddings}"


def fit_noise_input(wildcards):
    """The fit's noise level: needed by the methods with the fit, not by the others."""
    needs = "baseline" not in wildcards.keys() or wildcards.baseline == MEANFACE_FIT
    return {"fit_noise": "results/model/fit_noise.npz"} if needs else {}


def fit_args(wildcards, input):
    return f"--fit-noise {input.fit_noise}" if "fit_noise" in input.keys() else ""


def fit_settings_arg(wildcards):
    """The fit's settings, for the methods that fit (a parameter, so that changing them reruns those only)."""
    fits = wildcards.get("baseline", MEANFACE_FIT) == MEANFACE_FIT
    return f"--fit-settings {shlex.quote(FIT_SETTINGS)}" if fits else ""


SYNTHETIC = config["scans"]["source"] == "synthetic"


def injured_mesh(wildcards):
    """The injured face a cover sits on: a patient's registered scan; a synthetic cohort subject's patient
    variant as a raw scan of the true surface with the scar, registered like any scan; with real cohort scans
    (no true surface to scan) the patient variant simulated on the registered scan."""
    if wildcards.subject in PATIENTS:
        return f"results/registered/{wildcards.subject}.ply"
    if SYNTHETIC:
        return f"results/registered_injured/{wildcards.subject}.ply"
    return f"results/scars/{wildcards.subject}/{config['patient_variant']}.ply"


def wound_arg(wildcards, input):
    return f"--wound {input.wound}" if "wound" in input.keys() else ""


def about_arg(wildcards, input):
    return f"--about {input.about}" if "about" in input.keys() else ""


def infer_inputs(wildcards):
    """A cohort subject starts from a render of its patient variant; a patient from its photo and scan."""
    common = {
        "checkpoints": expand("results/checkpoints/recon_{experiment}.pt", experiment=EXPERIMENTS),
        "table": "results/metrics/table_val.csv",  # experiment: auto chooses on the validation subjects
        "space": "results/model/face_space.npz",
        "decoder": "results/model/decoder.npz",
        "fit_noise": "results/model/fit_noise.npz",
    }
    if wildcards.subject in PATIENTS:
        folder = PATIENTS[wildcards.subject]
        found = {"photo": patient_file(folder, "photo", PHOTO_SUFFIXES), "encoder": "results/encoder/arcface.onnx",
                 "injured": f"results/registered/{wildcards.subject}.ply",
                 "registration": f"results/registered/{wildcards.subject}.json"}
        wound = optional_patient_file(folder, "wound", (*SCAN_SUFFIXES, ".npz", ".json"))
        return common | found | ({"wound": wound} if wound else {})
    return common | {"embeddings": f"results/embeddings/{wildcards.subject}.npz", "injured": injured_mesh(wildcards),
                     "split": "results/splits.csv"}


def uninjured_infer_inputs(wildcards):
    """A cohort subject's *uninjured* registered scan through the same inference (false wounds)."""
    return infer_inputs(wildcards) | {"injured": f"results/registered/{wildcards.subject}.ply"}


def on_implausible(wildcards):
    """A patient whose found wound cannot be real is stopped (asked for a marked wound); for cohort subjects the
    evaluation records it and goes on."""
    return "stop" if wildcards.subject in PATIENTS else "record"


def infer_source_args(wildcards, input):
    if wildcards.subject in PATIENTS:
        wound = f" --wound {input.wound}" if "wound" in input.keys() else ""
        return (f"--photo {shlex.quote(input.photo)} --encoder {input.encoder} --device {config['device']}"
                f" --registration {input.registration}{wound}")
    return f"--embeddings {input.embeddings} --split {input.split}"


def all_benchmarks():
    """The benchmark file of every job of the default target (results/benchmarks/{rule}/{job}.tsv)."""
    per_subject = ["ingest", "scars", "render", "contact_sheet"]
    if config["scans"]["source"] == "synthetic":
        per_subject.append("synthetic_scan")
    single = ["face_space", "pool", "split", "render_pool", "encoder", "decoder", "base", "fit_noise",
              "metrics_table", "learning_report", "registration_summary", "covers_summary", "encoder_summary",
              "cover_accuracy", "metrics_table_val"]
    printed = TEST_SUBJECTS + list(PATIENTS)
    files = [f"results/benchmarks/{rule}/{rule}.tsv" for rule in single]
    files += expand("results/benchmarks/{rule}/{subject}.tsv", rule=per_subject, subject=SUBJECTS)
    files += expand("results/benchmarks/{rule}/{subject}.tsv", rule=["reference_watertight", "reference_filling",
                                                                     "reference_print", "reference_preview"],
                    subject=TEST_SUBJECTS)
    files += expand("results/benchmarks/embed/{renders}.tsv", renders=SUBJECTS + ["pool"])
    files += expand("results/benchmarks/{rule}/{subject}.tsv", rule=["infer", "watertight", "filling", "print",
                                                                     "preview"], subject=printed)
    files += expand("results/benchmarks/{rule}/{subject}.tsv", rule=["ingest", "mark"], subject=list(PATIENTS))
    if SYNTHETIC:  # test subjects' covers come from injured raw scans; false wounds from their uninjured scans
        files += expand("results/benchmarks/{rule}/{subject}.tsv", rule=["injured_scan", "ingest_injured",
                                                                         "infer_uninjured"], subject=TEST_SUBJECTS)
    files += expand("results/benchmarks/swav/{fraction}.tsv", fraction=FRACTIONS)
    files += expand("results/benchmarks/{rule}/{experiment}.tsv", rule=["finetune", "evaluate_experiment", "evaluate_experiment_val",
                                                                        "evaluate_experiment_fit"],
                    experiment=EXPERIMENTS)
    files += expand("results/benchmarks/evaluate_baseline/{baseline}.tsv", baseline=BASELINES)
    return files


import shutil

GCODE = config["printer"].get("gcode", "auto") == "always" or (
    config["printer"].get("gcode", "auto") == "auto" and shutil.which("prusa-slicer") is not None
)
REF = "results/covers_reference"
# printer.output: cover | mould | both — the mould (a two-part silicone mould around the cover) is made and
# sliced for mould and both; the cover's G-code for cover and both
OUTPUT = config["printer"].get("output", "cover")
COVER_GCODE = GCODE and OUTPUT != "mould"
MOULD = OUTPUT != "cover"


def mould_args(wildcards, output):
    if not MOULD:
        return ""
    return f"--out-mould-stl {output.mould}" + (f" --out-mould-gcode {output.mould_gcode}" if GCODE else "")
