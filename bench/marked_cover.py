"""Benchmark: covers from a hand mark on held-out faces with real anatomy (issue 25: footprint IoU with the
true wound ≥ 0.85, restore as with the true mask ± 0.1 mm).

Each face (`facecover.heldout.patient_faces`, sets not learned from) gets one round dent (2-4 mm deep,
9-18 mm radius; 9-11 on the nose) as in `bench/patients.py`, is scanned raw (own triangulation, noise,
holes, random pose) and registered by `ingest_scan`. A clinician's rough mark is simulated on the raw scan:
the scan vertices within the dent's visible footprint (depth > 0.1 mm) give or take a wobbly edge of up to
`--wobble` mm (a smooth random function of the angle around the centre), in the scan's own coordinates —
what the marking page saves. The mark goes through `wound_from_marks` and the fit (edge snapped by at most
3 mm), then `make_watertight` and `cover_solid`; beside it, the same scan with the true wound mask (the
registered vertices nearest a true wound vertex). Scored in the scan's frame (`facecover.cover_scores`).

A cover rests on a band of healthy skin around the wound (`filling.margin_mm`, 5 mm), so its whole footprint
is larger than the wound by design (a 12 mm radius wound: IoU (12/17)² ≈ 0.5 at best). The table gives the
footprint against the true wound, against the footprint of the cover made from the true mask (does the mark
give the same cover?), and the cover's wound part (the band left out) against the true wound.

Run after `make run` (reads results/model/{face_space,decoder}.npz, results/registered/, results/splits.csv):

    .venv/bin/python bench/marked_cover.py [--per-set 2] [--sets expressions asymmetric handmade] [--wobble 2]
        [--set key=value ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

R = Path("results")


def rough_mark(scan_v: np.ndarray, centre: np.ndarray, normal: np.ndarray, radius_mm: float, wobble_mm: float,
               rng: np.random.Generator) -> np.ndarray:
    """Scan vertices (M, 3) within `radius_mm` ± a smooth wobble (up to `wobble_mm`, three harmonics of the
    angle around `normal`) of `centre`: a hand-drawn mark around a round wound."""
    a = np.cross(normal, [1.0, 0.0, 0.0] if abs(normal[0]) < 0.9 else [0.0, 1.0, 0.0])
    a /= np.linalg.norm(a)
    b = np.cross(normal, a)
    d = scan_v - centre
    angle = np.arctan2(d @ b, d @ a)
    k = np.arange(1, 4)
    wobble = (rng.uniform(-1, 1, 3) * np.cos(np.outer(angle, k) + rng.uniform(0, 2 * np.pi, 3))).sum(axis=1)
    return scan_v[np.linalg.norm(d, axis=1) < radius_mm + wobble_mm * wobble / 3.0]


def main() -> None:
    from facecover.cohort import ScanSettings, disk_parameterization, injured_surface, synthetic_scan
    from facecover.cover_scores import patient_cover
    from facecover.files import save_mesh
    from facecover.heldout import PATIENT_SETS, WOUND_SITES, dent, patient_faces, wound_site
    from facecover.ingest import ingest_scan
    from patients import fit_settings, run_model
    from facecover.marked_wound import MarkedWound, wound_from_marks
    from facecover.filling import FillingSettings
    from facecover.meshtools import apply_transform, vertex_areas, vertex_normals
    from facecover.scars import ScarSettings
    from scipy.spatial import cKDTree

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-set", type=int, default=2)
    ap.add_argument("--sets", nargs="+", default=["expressions", "asymmetric", "handmade"], choices=PATIENT_SETS)
    ap.add_argument("--wobble", type=float, default=2.0, help="the mark's edge wanders this far (mm) either way")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--set", nargs="*", default=[], help="fit settings key=value on top of config.yaml's fit")
    ap.add_argument("--out", default=str(R / "benchmarks/marked_cover.csv"))
    args = ap.parse_args()
    config = yaml.safe_load(Path("config.yaml").read_text())
    settings = fit_settings(config, args.set)
    space, decoder, noise = run_model(R, settings)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for which in args.sets:
            for i, face in enumerate(patient_faces(space, which, args.per_set, args.seed)):
                rng = np.random.default_rng([args.seed, i, PATIENT_SETS.index(which), 25])
                site = WOUND_SITES[i % len(WOUND_SITES)]
                radius = rng.uniform(9.0, 11.0) if site == "nose" else rng.uniform(9.0, 18.0)
                depth = rng.uniform(2.0, 4.0)
                centre = wound_site(face, site)
                displacement = dent(face, centre, radius, -depth)
                injured = injured_surface(face.vertices, face.faces, displacement, ScarSettings().normal_smoothing_mm)
                uv = disk_parameterization(face.vertices, face.faces)
                scan_v, scan_f, pose = synthetic_scan(injured, face.faces, uv, rng, ScanSettings())
                save_mesh(Path(tmp) / "scan.ply", scan_v, scan_f)
                reg = ingest_scan(Path(tmp) / "scan.ply", space)
                truth = {"pose": pose, "healthy": face.vertices, "injured": injured, "faces": face.faces,
                         "wound": np.abs(displacement) > 0.1}
                # the mark, drawn on the raw scan around the dent's visible footprint (depth > 0.1 mm)
                visible = radius * np.arccos(2 * 0.1 / depth - 1) / np.pi
                normal = vertex_normals(injured, face.faces)[centre] @ pose[:3, :3].T
                points = rough_mark(scan_v, apply_transform(pose, injured[centre][None])[0], normal, visible,
                                    args.wobble, rng)
                marked = MarkedWound(wound_from_marks(points, 2.0, reg.vertices, reg.scan_to_canonical))
                # the true mask over the registered vertices: nearest true vertex in the wound (within 3 mm)
                registered = apply_transform(np.linalg.inv(reg.scan_to_canonical), reg.vertices)
                dist, nearest = cKDTree(apply_transform(pose, injured)).query(registered)
                true_mask = truth["wound"][nearest] & (dist < 3.0)
                areas = vertex_areas(reg.vertices, space["faces"])
                same = lambda a, b: float(areas[a & b].sum() / areas[a | b].sum())  # noqa: E731
                covers = {}
                for source, wound in (("mark", marked), ("true mask", true_mask)):
                    row = patient_cover(space, decoder, noise, settings, reg, truth, wound=wound, with_masks=True)
                    covers[source] = {k: row.pop(k) for k in ("footprint_mask", "cover_wound_mask") if k in row}
                    if source == "true mask" and covers["mark"] and covers[source]:
                        # the mark's cover against the true mask's, on the same registered scan
                        rows[-1]["footprint_iou_vs_true_mask_cover"] = same(covers["mark"]["footprint_mask"],
                                                                            covers[source]["footprint_mask"])
                    rows.append({"set": which, "face": face.name, "site": site, "radius_mm": radius,
                                 "wound from": source, **row})
                    print(f"{which} {face.name} {site} {source}: footprint IoU {row.get('footprint_iou', np.nan):.3f}"
                          f" restore {row.get('restore_mean_mm', np.nan):.3f} mm", file=sys.stderr, flush=True)
    table = pd.DataFrame(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    cols = ["set", "face", "site", "wound from", "footprint_iou", "cover_wound_iou", "footprint_iou_vs_true_mask_cover",
            "restore_mean_mm", "restore_p95_mm", "contact_mm", "coverage"]
    print(table[[c for c in cols if c in table]].round(3).to_string(index=False))
    pivot = table.pivot_table(index=["set", "face"], columns="wound from",
                              values=["footprint_iou", "cover_wound_iou", "restore_mean_mm"])
    mark = table[table["wound from"] == "mark"]
    restore = pivot["restore_mean_mm"]["mark"] - pivot["restore_mean_mm"]["true mask"]
    print("\nthe mark's cover: footprint (wound + the {:.0f} mm band on healthy skin) IoU with the true wound mean "
          "{:.3f} (min {:.3f}), with the true mask's cover's footprint mean {:.3f} (min {:.3f}); its wound part "
          "IoU with the true wound mean {:.3f} (min {:.3f}; the true mask's cover: {:.3f}); restore vs the true "
          "mask's cover: difference mean {:+.3f} mm, largest {:.3f} mm".format(
              FillingSettings().margin_mm, mark["footprint_iou"].mean(), mark["footprint_iou"].min(),
              mark["footprint_iou_vs_true_mask_cover"].mean(), mark["footprint_iou_vs_true_mask_cover"].min(),
              pivot["cover_wound_iou"]["mark"].mean(), pivot["cover_wound_iou"]["mark"].min(),
              pivot["cover_wound_iou"]["true mask"].mean(), restore.mean(), restore.abs().max()))


if __name__ == "__main__":
    main()
