"""Workflow tests: the Snakefile parses, validates its config and wires the stages."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def run_snakemake(workdir: Path, *args, config: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir), "--cores", "2", *args]
    if config is not None:
        cfg = workdir / "test-config.yaml"
        cfg.write_text(yaml.safe_dump(config))
        cmd += ["--configfile", str(cfg)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)


@pytest.fixture
def workdir(tmp_path):
    """A run folder with the workflow's relative paths (workflow/, src/) linked in.

    The default config.yaml and the stage code (src/, an input of every step) are copied, not
    linked, so a test can change them without touching the repository.
    """
    (tmp_path / "workflow").symlink_to(ROOT / "workflow")
    shutil.copytree(ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    return tmp_path


def test_config_validates():
    from snakemake.utils import validate

    validate(yaml.safe_load((ROOT / "config.yaml").read_text()), str(ROOT / "workflow/schemas/config.schema.yaml"))


def test_dry_run_shows_the_dag(workdir):
    config = yaml.safe_load((ROOT / ".test/config.yaml").read_text())
    res = run_snakemake(workdir, "-n", config=config)
    assert res.returncode == 0, res.stderr
    for rule in ("face_space", "synthetic_scan", "ingest", "split", "pool"):
        assert rule in res.stdout


def test_experiment_is_chosen_on_validation_subjects_only(workdir):
    """Inference's `experiment: auto` reads the validation subjects' table; the test table (results/metrics/
    table.csv) is not an input of any job inference depends on, so the choice cannot see the test figures."""
    config = yaml.safe_load((ROOT / ".test/config.yaml").read_text())
    res = run_snakemake(workdir, "-n", "-p", "--forceall", "results/reconstructions/subject05.ply", config=config)
    assert res.returncode == 0, res.stderr
    infer = [line for line in res.stdout.splitlines() if "facecover infer " in line]  # "Shell command: facecover …"
    assert infer and all("--table results/metrics/table_val.csv" in line for line in infer), infer
    assert "results/metrics/table.csv" not in res.stdout
    assert "rule metrics_table:" not in res.stdout and "evaluate_experiment_val" in res.stdout


@pytest.mark.parametrize("change, line", [
    (lambda c: c["cohort"].update(n_subjects="many"),
     "cohort.n_subjects: 'many' is not allowed: must be of type integer"),
    (lambda c: c["scans"].update(zzz_colour="red"), "scans.zzz_colour: unknown key (known here: "),
    (lambda c: c.update(zzz_seed=3), "zzz_seed: unknown key (known here: "),
    (lambda c: c["scans"].update(units="inches"), "scans.units: 'inches' is not allowed: must be one of mm, cm, "),
    (lambda c: c["printer"].update(bed_y_mm=-1), "printer.bed_y_mm: -1 is not allowed: must be > 0"),
    (lambda c: c["scars"].update(depth_mm=[1.0, -4.0]), "scars.depth_mm.1: -4.0 is not allowed: must be > 0"),
])
def test_bad_config_fails_at_once_naming_the_key(workdir, change, line):
    """One line per problem, naming the dotted key (which the schema's text never contains, so a dump
    of the schema cannot pass) — and no schema dump."""
    config = yaml.safe_load((ROOT / ".test/config.yaml").read_text())
    change(config)
    res = run_snakemake(workdir, "-n", config=config)
    assert res.returncode != 0
    errors = [x for x in res.stderr.splitlines() if x.startswith("facecover: config error: ")]
    assert len(errors) == 1, res.stderr
    assert errors[0].startswith("facecover: config error: " + line), errors
    assert line.split(":")[0] not in (ROOT / "workflow/schemas/config.schema.yaml").read_text()
    assert "additionalProperties" not in res.stderr and "$defs" not in res.stderr


def test_scans_from_a_folder(workdir, make_scan, tmp_path_factory):
    folder = tmp_path_factory.mktemp("scans")
    for subject in ("alice", "bob", "carol"):
        path, _, _ = make_scan(subject=subject)
        shutil.copy(path, folder / f"{subject}.ply")
    config = yaml.safe_load((ROOT / ".test/config.yaml").read_text())
    config["scans"].update(source="dir", dir=str(folder))
    res = run_snakemake(workdir, "-n", config=config)
    assert res.returncode == 0, res.stderr
    assert "synthetic_scan" not in res.stdout and "ingest" in res.stdout
    config["scans"]["dir"] = str(folder / "nowhere")
    res = run_snakemake(workdir, "-n", config=config)
    assert res.returncode != 0 and "nowhere" in res.stdout + res.stderr


def planned_rules(res: subprocess.CompletedProcess) -> dict[str, int]:
    """Rule -> job count from a dry run's job stats table."""
    import re

    text = res.stdout + res.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:")[1].split("total")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


@pytest.mark.slow
def test_data_rules_run_end_to_end(workdir):
    import json

    import numpy as np
    import pandas as pd

    config = yaml.safe_load((ROOT / ".test/config.yaml").read_text())
    res = run_snakemake(workdir, config=config)
    assert res.returncode == 0, res.stderr[-3000:]
    subjects = [f"subject{i:02d}" for i in range(1, 6)]
    for s in subjects:
        report = json.loads((workdir / f"results/registered/{s}.json").read_text())
        assert report["truth_vertex_error_mm"]["mean"] <= 1.0
        assert (workdir / f"results/report/renders/{s}.png").stat().st_size > 1000
        for variant in ("00", "01"):
            for view in ("0", "1"):
                lm = json.loads((workdir / f"results/renders/{s}/{variant}_{view}.json").read_text())
                assert len(lm["arcface_landmarks_px"]) == 5
    assert len(list((workdir / "results/renders/pool").glob("*.png"))) == 4 * 2
    # encoder trained on the pool renders, embedding cache of every render (2 variants x 2 views, 2 augmentations)
    assert json.loads((workdir / "results/encoder/arcface.json").read_text())["trained"] is True
    for name, count in [(s, 4) for s in subjects] + [("pool", 8)]:
        with np.load(workdir / f"results/embeddings/{name}.npz") as cache:
            assert cache["clean"].shape == (count, 512) and cache["augmented"].shape == (count, 2, 512)
    encoder = pd.read_csv(workdir / "results/report/encoder.csv")
    assert list(encoder.faces) == ["cohort, injured renders"] and 0 <= encoder.verification_auc[0] <= 1
    split = pd.read_csv(workdir / "results/splits.csv")
    assert sorted(split.subject) == subjects and split.subject.is_unique
    test_subjects = sorted(split.subject[split.set == "test"])
    for s in test_subjects:  # reference covers (test subjects): checked STL, profile, report, G-code with PrusaSlicer
        prints = workdir / "results/covers_reference/prints"
        report = json.loads((prints / f"{s}.json").read_text())
        assert report["cover"]["checks"]["fits_printer"] and report["cover"]["volume_mm3"] > 0
        assert (prints / f"{s}_face.stl").exists() and (prints / f"{s}.ini").exists()
        assert (workdir / f"results/report/covers_reference/{s}.png").exists()
        if shutil.which("prusa-slicer"):
            assert report["gcode"]["print_time_s"] > 0 and report["gcode"]["filament_g"] > 0

    # the learning stages: decoder, base model, SwAV, fine-tuning, evaluation table; covers from the reconstruction
    table = pd.read_csv(workdir / "results/metrics/table.csv")
    assert list(table.method) == ["nossl", "ssl20", "ssl100", "nossl+fit", "ssl20+fit", "ssl100+fit", "mean",
                                  "injured", "completion", "meanface+fit"]
    assert table.set_index("method").loc["nossl+fit", "wound_mae_mm"] < table.set_index("method").loc[
        "injured", "wound_mae_mm"]
    for s in test_subjects:
        report = json.loads((workdir / f"results/prints/{s}.json").read_text())
        assert report["reconstruction"]["split"] == "test" and report["cover"]["checks"]["fits_printer"]
        assert (workdir / f"results/report/covers/{s}.html").read_text().count("webgl2") == 1
    covers = pd.read_csv(workdir / "results/metrics/covers.csv")
    assert list(covers.subject) == test_subjects + ["mean"] and covers.print_checks.all()
    stages = pd.read_csv(workdir / "results/report/stages.csv")
    assert {"ingest", "encoder", "finetune", "infer", "print"} <= set(stages.stage)

    # the HTML report builds, with the workflow's figures and tables
    res = run_snakemake(workdir, "--report", "results/report.html", config=config)
    assert res.returncode == 0, res.stderr[-2000:]
    html = (workdir / "results/report.html").read_text(errors="replace")
    for text in ("Registration", "Covers", "Renders", "Identity encoder", "Learning", "Run time and memory",
                 "registration.csv", "covers_reference.csv", "encoder.csv", "table.csv", "stages.csv", "covers.csv"):
        assert text in html

    upstream = {"face_space", "pool", "synthetic_scan", "ingest", "split", "render_pool", "encoder", "decoder"}
    printing = {"infer", "infer_uninjured", "watertight", "filling", "print", "preview", "cover_accuracy",
                "stage_times", "all"}
    validation = {"evaluate_experiment_val", "metrics_table_val"}  # what infer's experiment: auto chooses on
    # nothing changed -> nothing to do
    assert planned_rules(run_snakemake(workdir, "-n", config=config)) == {}
    # a scar parameter reruns scars and what depends on them, nothing upstream
    config["scars"]["depth_mm"] = [1.5, 4.0]
    plan = planned_rules(run_snakemake(workdir, "-n", config=config))
    assert {"scars": 5, "render": 5, "contact_sheet": 5, "embed": 5, "reference_filling": len(test_subjects),
            "reference_print": len(test_subjects),
            "swav": 2, "finetune": 3, "evaluate_baseline": 4}.items() <= plan.items(), plan
    assert not upstream & set(plan) and "base" not in plan and "fit_noise" not in plan, plan
    # a render parameter reruns rendering (cohort and pool), not the scars
    config["scars"]["depth_mm"] = [1.0, 4.0]
    config["render"]["max_yaw_deg"] = 12.0
    plan = planned_rules(run_snakemake(workdir, "-n", config=config))
    assert {"render": 5, "render_pool": 1, "contact_sheet": 5, "encoder": 1, "embed": 6, "base": 1}.items() \
        <= plan.items(), plan
    assert "scars" not in plan and "reference_filling" not in plan, plan
    # an embedding-cache setting reruns the cache and the learning, not the encoder
    config["render"]["max_yaw_deg"] = 15.0
    config["embed"]["augmentations"] = 3
    plan = planned_rules(run_snakemake(workdir, "-n", config=config))
    assert plan["embed"] == 6 and "encoder" not in plan and "render" not in plan, plan
    config["embed"]["augmentations"] = 2
    # fine-tuning epochs rerun the fine-tuning, the evaluation and what uses the models, nothing upstream
    config["finetune"]["epochs"] = 3
    plan = planned_rules(run_snakemake(workdir, "-n", config=config))
    assert {"finetune": 3, "evaluate_experiment": 3, "evaluate_experiment_fit": 3, "metrics_table": 1}.items() \
        <= plan.items(), plan
    assert set(plan) <= {"finetune", "evaluate_experiment", "evaluate_experiment_fit", "metrics_table",
                         "learning_report"} | printing | validation, plan
    config["finetune"]["epochs"] = 2
    # a SwAV setting reruns SwAV, the two ssl fine-tunings and their evaluation, not nossl's
    config["swav"]["temperature"] = 0.2
    plan = planned_rules(run_snakemake(workdir, "-n", config=config))
    assert {"swav": 2, "finetune": 2, "evaluate_experiment": 2, "evaluate_experiment_fit": 2}.items() <= plan.items()
    assert set(plan) <= {"swav", "finetune", "evaluate_experiment", "evaluate_experiment_fit", "metrics_table",
                         "learning_report"} | printing | validation, plan
    config["swav"]["temperature"] = 0.1
    # an inference setting reruns inference and the prints only
    config["infer"]["view"] = "1"
    plan = planned_rules(run_snakemake(workdir, "-n", config=config))
    assert plan.get("infer") == len(test_subjects) and set(plan) <= printing, plan
    config["infer"]["view"] = "0"
    # a printer setting reruns only the prints
    config["printer"]["nozzle_temperature_c"] = 215
    plan = planned_rules(run_snakemake(workdir, "-n", config=config))
    n = len(test_subjects)
    assert plan == {"reference_print": n, "covers_summary": 1, "print": n, "cover_accuracy": 1, "stage_times": 1,
                    "all": 1}, plan
    config["printer"]["nozzle_temperature_c"] = 210

    # changing one stage's code reruns that stage (and what depends on it), nothing else
    with open(workdir / "src/facecover/printing.py", "a") as fh:
        fh.write("\n# a code change\n")
    plan = planned_rules(run_snakemake(workdir, "-n", config=config))
    n = len(test_subjects)
    assert plan == {"reference_print": n, "covers_summary": 1, "print": n, "cover_accuracy": 1, "stage_times": 1,
                    "all": 1}, plan
    assert run_snakemake(workdir, config=config).returncode == 0

    # a run killed mid-way resumes with --rerun-incomplete and redoes nothing it had finished
    config["render"]["size"] = 96
    planned_before_kill = planned_rules(run_snakemake(workdir, "-n", config=config))
    cfg = workdir / "test-config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    log = workdir / "killed.log"
    cmd = [SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir), "--cores", "1",
           "--configfile", str(cfg)]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True)
        deadline = time.time() + 300
        while log.read_text().count("Finished jobid") < 2 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finished_before_kill = log.read_text().count("Finished jobid")
    assert finished_before_kill >= 2
    plan = planned_rules(run_snakemake(workdir, "-n", "--rerun-incomplete", config=config))
    # what a new render size reruns (the dry run before the kill), less the jobs that finished before it
    assert sum(plan.values()) == sum(planned_before_kill.values()) - finished_before_kill, (plan, finished_before_kill)
    assert run_snakemake(workdir, "--unlock", config=config).returncode == 0  # a SIGKILL leaves the lock
    res = run_snakemake(workdir, "--rerun-incomplete", config=config)
    assert res.returncode == 0, res.stderr[-2000:]
    assert planned_rules(run_snakemake(workdir, "-n", config=config)) == {}


def test_lint_is_clean(workdir):
    res = run_snakemake(workdir, "--lint")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Lints for" not in res.stdout + res.stderr
