"""Benchmark: from the cached model to a print-ready STL for one subject (no slicing).

For each test subject of the default run (`results/`, run `make run` first): the fine-tuned model's
prediction from the cached embedding of the patient image, the fit to the injured scan (wound found),
watertight healthy face, cover solid and the print checks — the steps of `results/prints/{subject}.stl`
without PrusaSlicer and without process start-up. Printed per step, warm (the first subject is run once
before timing so that imports and caches are not counted), with the repetitions.

    .venv/bin/python bench/infer.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import yaml

from facecover.filling import FillingSettings, cover_solid
from facecover.files import load_mesh, load_npz
from facecover.learn.data import load_embeddings, read_split, subjects_in
from facecover.learn.decoder import load_decoder
from facecover.learn.infer import FitSettings, choose_experiment, fit_healthy_face
from facecover.learn.network import load_mapping
from facecover.learn.train import predict_coefficients
from facecover.printing import PrinterSettings, check_printable, place_on_bed
from facecover.watertight import WatertightSettings, make_watertight

R = Path("results")


def one_subject(subject: str, config: dict, model: dict) -> dict[str, float]:
    """Seconds per step for one subject."""
    times = {}
    t = time.perf_counter()
    cache = load_embeddings(R / f"embeddings/{subject}.npz")
    variant = config["patient_variant"]
    stem = f"{variant}_{config['infer']['view']}"
    injured_mesh = load_mesh(R / f"scars/{subject}/{variant}.ply")
    injured = np.asarray(injured_mesh.vertices)
    faces = np.asarray(injured_mesh.faces)
    times["load"] = time.perf_counter() - t
    t = time.perf_counter()
    prior = predict_coefficients(model["net"], cache["clean"][[list(cache["stem"]).index(stem)]])[0]
    times["image -> face"] = time.perf_counter() - t
    t = time.perf_counter()
    fit = fit_healthy_face(model["decoder"], injured, faces, prior, model["noise"], model["fit"])
    times["fit to scan"] = time.perf_counter() - t
    t = time.perf_counter()
    v, f, _ = make_watertight(fit["healthy"], faces, WatertightSettings(config["watertight"]["back_offset_mm"]))
    times["watertight"] = time.perf_counter() - t
    t = time.perf_counter()
    cv, cf, _ = cover_solid(injured, faces, v, f, model["filling"], wound_mask=fit["wound"])
    times["cover solid"] = time.perf_counter() - t
    t = time.perf_counter()
    placed = place_on_bed(cv, cf, model["printer"])
    check_printable(placed, cf, model["printer"], model["filling"].min_thickness_mm, name=subject)
    times["print checks"] = time.perf_counter() - t
    times["total"] = sum(times.values())
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if not (R / "metrics/table.csv").exists():
        raise SystemExit("bench/infer.py reads the default run's results: run `make run` first")
    import pandas as pd

    config = yaml.safe_load(Path("config.yaml").read_text())
    space = load_npz(R / "model/face_space.npz")
    experiments = ["nossl"] + [f"ssl{round(100 * f)}" for f in config["swav"]["fractions"]]
    experiment = choose_experiment(pd.read_csv(R / "metrics/table.csv"), experiments)
    model = {"net": load_mapping(R / f"checkpoints/recon_{experiment}.pt")[0],
             "decoder": load_decoder(R / "model/decoder.npz", len(space["vertices"])),
             "noise": load_npz(R / "model/fit_noise.npz")["noise_mm"],
             "fit": FitSettings(**config["fit"]),
             "filling": FillingSettings(**config["filling"]),
             "printer": PrinterSettings(**{k: v for k, v in config["printer"].items() if k != "gcode"})}
    subjects = subjects_in(read_split(R / "splits.csv"), "test")
    one_subject(subjects[0], config, model)  # warm-up: imports, Open3D and SuperLU start-up
    rows = []
    for s in subjects:
        for _ in range(args.repeats):
            rows.append({"subject": s, **one_subject(s, config, model)})
    table = pd.DataFrame(rows)
    print(f"model {experiment}; {len(subjects)} test subjects x {args.repeats} repetitions (warm), seconds:")
    print(table.groupby("subject").median().round(3).to_string())
    total = table.groupby("subject")["total"].median()
    print(f"\ncached model -> print-ready STL (no slicing): median {total.median():.2f} s, "
          f"worst subject {total.max():.2f} s (target <= 5 s)")


if __name__ == "__main__":
    main()
