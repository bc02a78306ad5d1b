"""Benchmark: covers for held-out patients, end to end from injured raw scans, scored against the true surfaces.

Each set (`facecover.heldout.patient_faces`) holds faces the product did not learn from — except `cohort`, made
like the workflow's people (ICT identities + detail), for comparison:

    cohort       in-model: ICT identities + fine detail (template topology)
    handmade     the old generator: MeshMonk template + hand-made modes (template topology, other proportions)
    expressions  ICT people with a squint, a smile or the mouth slightly open, plus a strong 3-D warp (ICT topology)
    asymmetric   ICT people with one side wider and one cheek fuller (ICT topology)
    cohort_scars in-model, other people: the cohort's scar mix (`config.yaml` scars: 1-3 round, elongated or
                 severe scars, half of them raised) instead of one dent — validation, like `cohort`
    cohort_warped in-model, other people with an expression (ICT's blendshapes on the template) and a strong
                 smooth warp — validation for what a scan shows beyond a neutral face, like `cohort`

Every face is scanned twice as a raw scan (own triangulation, 0.2 mm noise, holes, random pose): once with one
(`cohort_scars`: the cohort's scars) round dent (2-4 mm deep, 9-18 mm radius — 9-11 on the nose — on a cheek, the forehead, the nose or the chin)
and once uninjured. Each scan goes through what a patient's does — `ingest_scan`, the fit with the mean face
as prior (no photo: the image prior moves the fit little, `meanface+fit` vs `nossl+fit` in the results
table), the plausibility check, `make_watertight`, `cover_solid` with the wound found — and is scored in the
scan's own frame (`facecover.cover_scores`): found IoU, restore mean / p95, contact, coverage, whether the
cover touches an eye opening, a nostril or the mouth opening; on the uninjured scan, the false wound (mm²).

Beside the product, in the same run: a shape-model baseline (the decoder fitted to every vertex by least
squares, the wound where the skin is more than 1 mm off it) — what a user with a face model would do.

Run after `make run` (it reads results/model/{face_space,decoder}.npz, results/registered/ and results/splits.csv
for the fit's noise model, and config.yaml's `fit`):

    .venv/bin/python bench/patients.py [--per-set 4] [--sets cohort handmade expressions asymmetric]
        [--set key=value ... [--set key=value ...]] [--registration key=value ...] [--cache DIR]
        [--out results/benchmarks/patients.csv]

Each `--set` is one candidate of fit settings (on top of config.yaml's), scored on the same registered
scans; settings are chosen on the `cohort`, `cohort_scars` and `cohort_warped` sets (validation people made
like the training ones), never on the held-out sets.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from facecover.cover_scores import patient_case
from facecover.files import load_mesh_arrays, load_npz
from facecover.heldout import PATIENT_SETS, patient_dent, patient_faces, scar_mix
from facecover.ingest import RegistrationSettings
from facecover.learn.data import read_split, subjects_in
from facecover.learn.decoder import load_decoder
from facecover.learn.infer import FitSettings, fit_noise, fit_nuisance
from facecover.scars import ScarSettings

R = Path("results")


def key_values(pairs: list[str]) -> dict:
    """`key=value` arguments as a dict, values read as YAML (as in config.yaml)."""
    return {k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in pairs)}


def fit_settings(config: dict, overrides: list[str]) -> FitSettings:
    """config.yaml's `fit` block with `key=value` overrides."""
    return FitSettings(**(config["fit"] | key_values(overrides)))


def run_model(results: Path, settings: FitSettings) -> tuple[dict, dict, np.ndarray]:
    """The finished run's face space and decoder (`results`/model) and the fit's noise model with `settings`,
    measured as the workflow's fit_noise rule does: on the registered training scans."""
    space = load_npz(results / "model/face_space.npz")
    decoder = load_decoder(results / "model/decoder.npz", len(space["vertices"]))
    train = subjects_in(read_split(results / "splits.csv"), "train")
    healthy = np.stack([load_mesh_arrays(results / f"registered/{s}.ply")[0] for s in train])
    return space, decoder, fit_noise(decoder, space["faces"], healthy, settings, fit_nuisance(space, settings))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-set", type=int, default=4)
    ap.add_argument("--sets", nargs="+", default=list(PATIENT_SETS), choices=PATIENT_SETS)
    ap.add_argument("--set", nargs="*", default=[], action="append",
                    help="fit settings key=value on top of config.yaml's fit; repeat --set for more candidates, "
                         "each scored on the same registered scans")
    ap.add_argument("--registration", nargs="*", default=[],
                    help="registration settings key=value on top of the defaults (e.g. expression_sd=0), for every scan")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", help="a folder keeping each scan's registration: a second run with other --set "
                                    "candidates scores them without registering again (seconds then exclude it)")
    ap.add_argument("--out", default=str(R / "benchmarks/patients.csv"))
    args = ap.parse_args()
    config = yaml.safe_load(Path("config.yaml").read_text())
    space = load_npz(R / "model/face_space.npz")
    if "openings" not in space:
        raise SystemExit("results/model/face_space.npz predates the real-anatomy face space: run `make run` first")
    decoder = load_decoder(R / "model/decoder.npz", len(space["vertices"]))
    candidates = [" ".join(c) or "config" for c in (args.set or [[]])]
    settings = [fit_settings(config, c) for c in (args.set or [[]])]
    # each candidate's noise model, measured as the workflow's fit_noise rule does: on the registered training scans
    train = subjects_in(read_split(R / "splits.csv"), "train")
    healthy = np.stack([load_mesh_arrays(R / f"registered/{s}.ply")[0] for s in train])
    noise = [fit_noise(decoder, space["faces"], healthy, one, fit_nuisance(space, one)) for one in settings]
    scar_settings = ScarSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in config["scars"].items()
                                    if k != "variants_per_subject"})
    registration = RegistrationSettings(**key_values(args.registration))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for which in args.sets:
            for i, face in enumerate(patient_faces(space, which, args.per_set, args.seed)):
                rng, site, radius, displacement = patient_dent(face, which, i, args.seed)
                if which == "cohort_scars":
                    scars = scar_mix(space, face, rng, scar_settings)
                    displacement, radius = scars["displacement"], np.nan
                    site = " + ".join(f"{k} {r} {d:+.1f} mm" for k, r, d in
                                      zip(scars["scar_kind"], scars["scar_region"], scars["scar_depth_mm"]))
                for injured in (True, False):
                    cached = Path(args.cache) / f"s{args.seed}_{face.name}_{int(injured)}.pkl" if args.cache else None
                    results = patient_case(space, decoder, noise, settings, face,
                                           displacement if injured else None, rng, Path(tmp), cached,
                                           registration=registration)
                    for name, result in zip(candidates, results):
                        row = {"settings": name, "set": which, "face": face.name, "injured": injured,
                               "site": site if injured else "", "radius_mm": radius if injured else np.nan,
                               **face.notes, **result}
                        rows.append(row)
                        shown = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()
                                 if k in ("found_iou", "found_mm2", "restore_mean_mm", "coverage", "implausible",
                                          "baseline_found_iou", "seconds", "refused_scan", "cover_failed")}
                        print(f"[{name}] {which} {face.name} {'injured' if injured else 'uninjured'} "
                              f"{site if injured else ''}: {shown}", file=sys.stderr, flush=True)
    table = pd.DataFrame(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(f"noise model: the fit's noise on {len(train)} registered training scans, per candidate; fit settings: "
          "config.yaml's fit block" + "".join(
        f"\n  {name}: {s}" for name, s in zip(candidates, settings)) + "\n")
    for name, t in table.groupby("settings", sort=False):
        print(f"settings: {name}")
        print(summarize(t).to_string(index=False) + "\n")


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Per set: the issue's figures (found IoU mean / min, false wound mm² per uninjured face, restore mean /
    p95, contact, coverage, covers touching an opening, implausible, seconds per scan) and the baseline's."""
    out = []
    for which, t in table.groupby("set", sort=False):
        inj, clean = t[t["injured"].astype(bool)], t[~t["injured"].astype(bool)]
        col = lambda frame, key: frame[key] if key in frame else pd.Series(dtype=float)  # noqa: E731
        out.append({
            "set": which, "faces": len(inj),
            "found IoU mean": col(inj, "found_iou").mean(), "found IoU min": col(inj, "found_iou").min(),
            "false wound mm² (mean)": clean["found_mm2"].mean(), "false wound mm² (max)": clean["found_mm2"].max(),
            "restore mean mm": col(inj, "restore_mean_mm").mean(), "restore p95 mm": col(inj, "restore_p95_mm").mean(),
            "contact mm": col(inj, "contact_mm").mean(), "coverage": col(inj, "coverage").mean(),
            "covers touching an opening": int(col(inj, "cover_touches_opening").fillna(False).astype(bool).sum()),
            "stopped as implausible (injured / uninjured)": f"{int((inj['implausible'].fillna('') != '').sum())} / "
                                                            f"{int((clean['implausible'].fillna('') != '').sum())}",
            "baseline found IoU": col(inj, "baseline_found_iou").mean(),
            "baseline false wound mm²": clean["baseline_found_mm2"].mean(),
            "s per scan": t["seconds"].mean(),
        })
    return pd.DataFrame(out).round(3)


if __name__ == "__main__":
    main()
