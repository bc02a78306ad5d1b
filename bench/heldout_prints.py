"""Benchmark: issue 28's acceptance on held-out patients — no support on the skin side, every profile slices,
the mould's cavity is the cover.

`--per-set` faces (default 2) of each held-out set (`facecover.heldout.patient_faces`: handmade, expressions,
asymmetric; seed 0), each scanned once with one round dent made exactly as `bench/patients.py` makes it (same
seeds, site, radius and depth), through a patient's path (`cover_scores.patient_case`: the raw scan, `ingest_scan`,
the fit with config.yaml's `fit` and the noise model measured on the registered training scans as the workflow's
fit_noise rule does, the plausibility check, `cover_solid` with the wound found; the cover written out with
`save_cover`). A patient whose scan is refused, who is stopped as implausible, or on whom no wound is found has
no cover: that is recorded and the next one taken.

Each cover is printed with `facecover print` (`printer.output: both`, `pose: skin_side_free`) in PLA, PETG and
TPU 95A, cover and mould sliced by PrusaSlicer: whether each slices; support contact on the skin side, the outer
side and the rim of every part (mm², measured from the G-code: `orientation.gcode_support_contact`); print time
and filament of the cover and of the mould. The mould's cavity (`mould.cavity_check`: the block minus the halves
as made, keys, channels and dropped slivers included, less the sprue and vents) against the cover: volume
difference (% of the cover's) and the surface distance sampled both ways (max and 99th percentile, mm).

Then the covers of the cohort's test subjects as the workflow made them (`--fillings`, read only): the mould
check alone, or with `--print-cohort` printed as above too (on the workflow's injured faces, `--injured`).

Run after `make run` (reads results/model/{face_space,decoder}.npz, results/registered/, results/splits.csv and
config.yaml); needs PrusaSlicer:

    .venv/bin/python bench/heldout_prints.py [--per-set 2] [--sets handmade expressions asymmetric]
        [--materials pla petg tpu95a] [--fillings results/fillings [--print-cohort] [--injured DIR]] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from facecover.cli import main as facecover
from facecover.cover_scores import patient_case
from facecover.files import load_mesh, load_npz, load_mesh_arrays
from facecover.heldout import PATIENT_SETS, patient_dent, patient_faces
from facecover.learn.data import read_split, subjects_in
from facecover.learn.decoder import load_decoder
from facecover.learn.infer import FitSettings, fit_noise, fit_nuisance
from facecover.mould import cavity_check, cover_mould

R = Path("results")
MOULD_LIMITS = {"distance_mm": 0.1, "volume_percent": 2.0}  # the acceptance


def mould_figures(cover_ply: Path) -> dict:
    """The mould made as `facecover print` makes it (the cover file as it loads it), checked against the cover."""
    mesh = load_mesh(cover_ply)
    v, f = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    start = time.perf_counter()
    mould = cover_mould(v, f)
    made_s = time.perf_counter() - start
    check = cavity_check(v, f, mould)
    return {**check, "slivers_dropped_mm3": mould["report"]["slivers_dropped_mm3"], "mould_s": made_s,
            "check_s": time.perf_counter() - start - made_s,
            "ok": bool(check["distance_max_mm"] <= MOULD_LIMITS["distance_mm"]
                       and abs(check["volume_diff_percent"]) <= MOULD_LIMITS["volume_percent"])}


def print_cover(files: dict, material: str, out: Path) -> dict:
    """`facecover print` of one cover in `material`, cover and mould sliced; its figures."""
    names = {k: out / f"{material}{suffix}" for k, suffix in (
        ("stl", ".stl"), ("face-stl", "_face.stl"), ("ini", ".ini"), ("json", ".json"), ("gcode", ".gcode"),
        ("mould-stl", "_mould.stl"), ("mould-gcode", "_mould.gcode"))}
    argv = ["print", "--filling", files["cover"], "--injured", files["injured"], "--sides", files["footprint"],
            "--printer", json.dumps({"material": material, "output": "both", "pose": "skin_side_free"})]
    for key, path in names.items():
        argv += [f"--out-{key}", str(path)]
    err = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stderr(err):
        code = facecover(argv)
    seconds = time.perf_counter() - start
    if code != 0:
        return {"slices": False, "mould_slices": False, "error": err.getvalue().strip().splitlines()[-1],
                "print_s": seconds}
    r = json.loads(names["json"].read_text())
    return {"slices": names["gcode"].stat().st_size > 0, "mould_slices": names["mould-gcode"].stat().st_size > 0,
            "parts": r["support_contact"]["parts"], "contact_source": r["support_contact"]["source"],
            "tilts": [p["estimate"]["skin_side_tilt_from_up_deg"] for p in r["cover"]["pose"]["parts"]],
            "time": r["gcode"]["print_time"], "filament_g": r["gcode"]["filament_g"],
            "mould_time": r["mould"]["gcode"]["print_time"], "mould_filament_g": r["mould"]["gcode"]["filament_g"],
            "silicone_ml": r["mould"]["silicone_ml"], "print_s": seconds}


def cover_and_mould(name: str, which: str, files: dict, materials: list[str], out: Path, failures: list) -> list:
    """The mould check and the prints in every material of one cover; its table lines. Failures appended."""
    m = mould_figures(Path(files["cover"]))
    print(f"  mould made in {m['mould_s']:.1f} s, cavity vs cover {m['volume_diff_percent']:+.3f} % (cavity "
          f"{m['cavity_volume_mm3']:.1f} / cover {m['cover_volume_mm3']:.1f} mm³), distance max "
          f"{m['distance_max_mm']:.4f} p99 {m['distance_p99_mm']:.4f} mm, slivers dropped "
          f"{m['slivers_dropped_mm3']:.3f} mm³", flush=True)
    if not m["ok"]:
        failures.append(f"{name}: mould cavity off")
    lines = []
    for material in materials:
        p = print_cover(files, material, out)
        lines.append((name, which, material, p | {"mould": m}))
        if not (p["slices"] and p["mould_slices"]):
            failures.append(f"{name} {material}: does not slice ({p.get('error')})")
            print(f"  {material}: DOES NOT SLICE: {p.get('error')}", flush=True)
            continue
        for k, part in enumerate(p["parts"]):
            if part["skin_side_mm2"] > 0:
                failures.append(f"{name} {material} part {k}: skin {part['skin_side_mm2']:.2f} mm²")
        contact = [(round(q["skin_side_mm2"], 2), round(q["outer_side_mm2"], 1), round(q["rim_mm2"], 1))
                   for q in p["parts"]]
        print(f"  {material}: print step {p['print_s']:.0f} s; skin / outer / rim per part {contact} mm², "
              f"tilt {[round(t) for t in p['tilts']]} deg; cover {p['time']}, {p['filament_g']:.2f} g; "
              f"mould {p['mould_time']}, {p['mould_filament_g']:.1f} g", flush=True)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-set", type=int, default=2)
    ap.add_argument("--sets", nargs="+", default=["handmade", "expressions", "asymmetric"], choices=PATIENT_SETS)
    ap.add_argument("--materials", nargs="+", default=["pla", "petg", "tpu95a"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fillings", default=str(R / "fillings"), help="the cohort test subjects' covers (*.ply)")
    ap.add_argument("--print-cohort", action="store_true",
                    help="also print the cohort covers in every material, as the held-out ones (else: mould check)")
    ap.add_argument("--injured", help="the cohort's injured faces (default: registered_injured/ beside --fillings)")
    ap.add_argument("--keep", help="keep the covers, G-code and reports in this folder")
    args = ap.parse_args()
    if shutil.which("prusa-slicer") is None:
        sys.exit("prusa-slicer is not installed: slicing and the support contact need it")
    t_all = time.perf_counter()
    config = yaml.safe_load(Path("config.yaml").read_text())
    space = load_npz(R / "model/face_space.npz")
    decoder = load_decoder(R / "model/decoder.npz", len(space["vertices"]))
    settings = FitSettings(**config["fit"])
    train = subjects_in(read_split(R / "splits.csv"), "train")
    healthy = np.stack([load_mesh_arrays(R / f"registered/{s}.ply")[0] for s in train])
    noise = fit_noise(decoder, space["faces"], healthy, settings, fit_nuisance(space, settings))
    print(f"noise model: the fit's noise on {len(train)} registered training scans "
          f"({time.perf_counter() - t_all:.0f} s)", flush=True)
    failures = []
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        for which in args.sets:
            for i, face in enumerate(patient_faces(space, which, args.per_set, args.seed)):
                rng, site, radius, displacement = patient_dent(face, which, i, args.seed)  # as bench/patients.py
                out = work / face.name
                out.mkdir(parents=True, exist_ok=True)
                row = patient_case(space, decoder, noise, settings, face, displacement, rng, out,
                                   save_cover=out / "patient")
                head = (f"{which} {face.name} ({site}, r {radius:.1f} mm): path {row['seconds']:.0f} s, "
                        f"found {row.get('found_mm2', 0):.0f} mm², IoU {row.get('found_iou', float('nan')):.2f}")
                if "cover_files" not in row:
                    why = (row.get("refused_scan") or (f"stopped as implausible: {row['implausible']}"
                           if row.get("implausible") else "") or row.get("cover_failed")
                           or "no wound found")
                    print(f"{head}: NO COVER ({why})", flush=True)
                    lines.append((face.name, which, None, why))
                    continue
                print(f"{head}, cover footprint IoU {row.get('footprint_iou', float('nan')):.2f}", flush=True)
                lines += cover_and_mould(face.name, which, row["cover_files"], args.materials, out, failures)
        cohort = sorted(Path(args.fillings).glob("*.ply"))
        injured_dir = Path(args.injured) if args.injured else Path(args.fillings).parent / "registered_injured"
        moulds = {}
        for ply in cohort:
            if not args.print_cohort:
                moulds[ply.stem] = mould_figures(ply)
                continue
            files = {"cover": str(ply), "footprint": str(ply.with_name(f"{ply.stem}_footprint.npz")),
                     "injured": str(injured_dir / f"{ply.stem}.ply")}
            print(f"cohort {ply.stem} (the workflow's cover, {ply}; injured face {files['injured']})", flush=True)
            out = work / ply.stem
            out.mkdir(parents=True, exist_ok=True)
            rows = cover_and_mould(ply.stem, "cohort", files, args.materials, out, failures)
            lines += rows
            moulds[ply.stem] = rows[0][3]["mould"]
        print()
        print(table(lines))
        if cohort:
            print(f"\nmould check on the cohort test subjects' covers ({args.fillings}):")
            print(f"{'subject':10s} {'cover mm³':>10s} {'cavity mm³':>10s} {'vol %':>8s} {'max mm':>8s} "
                  f"{'p99 mm':>8s} {'slivers mm³':>11s} {'pieces':>6s} {'mould s':>7s}")
        for name, m in moulds.items():
            if not m["ok"] and not args.print_cohort:
                failures.append(f"{name}: mould cavity off")
            print(f"{name:10s} {m['cover_volume_mm3']:10.1f} {m['cavity_volume_mm3']:10.1f} "
                  f"{m['volume_diff_percent']:+8.3f} {m['distance_max_mm']:8.4f} {m['distance_p99_mm']:8.4f} "
                  f"{m['slivers_dropped_mm3']:11.3f} {m['cavity_pieces']:6d} {m['mould_s']:7.1f}", flush=True)
    print(f"\nacceptance: skin-side contact 0 mm² on every part, every profile slices, mould cavity within "
          f"{MOULD_LIMITS['distance_mm']} mm and {MOULD_LIMITS['volume_percent']} %: "
          + ("MET" if not failures else "NOT MET:\n  " + "\n  ".join(failures)))
    print(f"total {time.perf_counter() - t_all:.0f} s")


def table(lines: list) -> str:
    """One row per patient, material and cover part: the cover slices, its support contact, print time and
    filament; the mould (one per cover, whatever the material) slices, its print time and filament, its cavity
    against the cover."""
    head = (f"{'patient':14s} {'set':11s} {'material':8s} {'part':4s} {'slices':>6s} {'skin mm²':>8s} "
            f"{'outer mm²':>9s} {'rim mm²':>7s} {'cover time':>10s} {'cover g':>7s} {'mould':>6s} "
            f"{'mould time':>10s} {'mould g':>7s} {'cavity vol %':>12s} {'dist max/p99 mm':>15s}")
    rows = [head]
    for name, which, material, p in lines:
        if material is None:
            rows.append(f"{name:14s} {which:11s} no cover: {p}")
            continue
        m = p["mould"]
        mould = f"{m['volume_diff_percent']:+12.3f} {m['distance_max_mm']:7.3f}/{m['distance_p99_mm']:.3f}"
        if not p["slices"]:
            rows.append(f"{name:14s} {which:11s} {material:8s} {'-':4s} {'no':>6s} {p.get('error', '')}")
            continue
        for k, part in enumerate(p["parts"]):
            rows.append(f"{name:14s} {which:11s} {material:8s} {k:4d} {'yes':>6s} {part['skin_side_mm2']:8.2f} "
                        f"{part['outer_side_mm2']:9.1f} {part['rim_mm2']:7.1f} {p['time']:>10s} {p['filament_g']:7.2f} "
                        f"{'yes' if p['mould_slices'] else 'no':>6s} {p['mould_time']:>10s} "
                        f"{p['mould_filament_g']:7.1f} {mould}")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
