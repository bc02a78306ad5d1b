"""`facecover` subcommands of the data stages: template and shape space, pool and cohort, ingestion, split
(rules in workflow/rules/data.smk)."""

from __future__ import annotations

import sys

import numpy as np

from .. import FacecoverError
from . import load_space, settings_from_json


def cmd_template(args) -> None:
    from ..files import save_npz
    from ..shape_space import face_space

    save_npz(args.out, **face_space(args.lb_modes, args.detail_modes))


def cmd_pool(args) -> None:
    from tqdm import tqdm

    from ..cohort import person_rng, person_vertices
    from ..files import save_npz

    space = load_space(args.space)
    names = [f"pool{i:05d}" for i in range(args.count)]
    people = np.stack([person_vertices(space, person_rng(args.seed, "pool", n), with_detail=True)
                       for n in tqdm(names, desc="pool identities", disable=None)])
    save_npz(args.out, vertices=people.astype(np.float32), names=np.array(names), faces=space["faces"])


def cmd_synth_scan(args) -> None:
    from ..cohort import (
        ScanSettings,
        disk_parameterization,
        person_rng,
        person_vertices,
        synthetic_scan,
    )
    from ..files import save_mesh, save_npz

    space = load_space(args.space)
    rng = person_rng(args.seed, "cohort", args.subject)
    truth = person_vertices(space, rng, with_detail=True)
    settings = settings_from_json(ScanSettings, args.settings)
    uv = disk_parameterization(space["vertices"], space["faces"])
    vertices, faces, pose = synthetic_scan(truth, space["faces"], uv, rng, settings)
    scale = 1000.0 if args.units == "m" else 1.0
    save_npz(args.out_truth, vertices=truth, faces=space["faces"], scan_pose=pose)
    save_mesh(args.out_scan, vertices / scale, faces)


def cmd_injured_scan(args) -> None:
    """The printed variant of a cohort subject as a raw scan: the scar applied to the *true* surface, then
    scanned like every scan (own triangulation, noise, holes, another random pose). The truth file keeps
    the true healthy and injured surfaces and the wound in the scan's frame (evaluation only)."""
    from ..cohort import ScanSettings, disk_parameterization, injured_surface, synthetic_scan
    from ..files import load_npz, save_mesh, save_npz
    from ..meshtools import apply_transform
    from ..scars import ScarSettings
    from ..seeds import person_rng

    space = load_space(args.space)
    truth = load_npz(args.truth)["vertices"].astype(np.float64)
    scar = load_npz(args.scar)
    if scar["displacement"].shape != (len(truth),):
        raise FacecoverError(f"{args.scar}: {scar['displacement'].size} displacements for {len(truth)} true vertices")
    injured = injured_surface(truth, space["faces"], scar["displacement"], ScarSettings().normal_smoothing_mm)
    rng = person_rng(args.seed, "injured_scan", args.subject)
    uv = disk_parameterization(space["vertices"], space["faces"])
    vertices, faces, pose = synthetic_scan(injured, space["faces"], uv, rng,
                                           settings_from_json(ScanSettings, args.settings))
    save_npz(args.out_truth, healthy=apply_transform(pose, truth), injured=apply_transform(pose, injured),
             faces=space["faces"],
             wound=scar["mask"].astype(bool), displacement=scar["displacement"], scan_pose=pose,
             vertices=injured)  # `vertices`: the injured truth in canonical pose, for ingest's vertex errors
    save_mesh(args.out_scan, vertices, faces)


def cmd_ingest(args) -> None:
    import dataclasses

    from ..files import save_json, save_mesh
    from ..ingest import RegistrationSettings, ingest_scan

    space = load_space(args.space)
    settings = dataclasses.replace(settings_from_json(RegistrationSettings, args.settings), seed=args.seed)
    reg = ingest_scan(args.scan, space, units=args.units, settings=settings)
    if args.truth:
        from ..files import load_npz

        truth = load_npz(args.truth)["vertices"]
        err = np.linalg.norm(reg.vertices - truth, axis=1)
        reg.report["truth_vertex_error_mm"] = {"mean": float(err.mean()), "p95": float(np.percentile(err, 95)),
                                               "max": float(err.max())}
    save_json(args.report, reg.report)
    save_mesh(args.out, reg.vertices, space["faces"])
    r = reg.report["residuals"]
    coverage = reg.report.get("coverage", {})
    partial = (f"; part of a face: {coverage['observed_area_mm2']:.0f} mm² of the template observed "
               f"({100 * coverage['observed_share']:.0f} %), the rest not fitted or covered" if coverage.get("partial") else "")
    print(f"{args.scan}: registered in {reg.report['seconds']['with_io']:.1f} s, mean surface distance "
          f"{r['mean_surface_distance_mm']:.2f} mm{partial}", file=sys.stderr)


def cmd_split(args) -> None:
    import pandas as pd

    from ..files import atomic_path
    from ..split import split_subjects

    assignment = split_subjects(args.subjects, args.ratios, args.seed)
    table = pd.DataFrame({"subject": list(assignment), "set": list(assignment.values())})
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)



def register(sub) -> None:
    p = sub.add_parser("template", help="template in mm, landmarks, regions and the face shape space")
    p.add_argument("--lb-modes", type=int, default=0)
    p.add_argument("--detail-modes", type=int, default=60)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_template)

    p = sub.add_parser("pool", help="the pool of clean synthetic identities")
    p.add_argument("--space", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_pool)

    p = sub.add_parser("synth-scan", help="one synthetic cohort subject: raw scan + true vertices")
    p.add_argument("--space", required=True)
    p.add_argument("--subject", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--settings", help="JSON object of scan settings (config 'scans' block without source/dir/units)")
    p.add_argument("--units", choices=("mm", "m"), default="mm", help="units to write the scan in")
    p.add_argument("--out-scan", required=True)
    p.add_argument("--out-truth", required=True)
    p.set_defaults(func=cmd_synth_scan)

    p = sub.add_parser("injured-scan", help="a cohort subject's printed variant as a raw scan of the true "
                                            "surface with the scar + its true surfaces")
    p.add_argument("--space", required=True)
    p.add_argument("--subject", required=True)
    p.add_argument("--truth", required=True, help="results/truth/{subject}.npz (true vertices, canonical pose)")
    p.add_argument("--scar", required=True, help="results/scars/{subject}/{variant}.npz (displacement, mask)")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--settings", help="JSON object of scan settings (config 'scans' block without source/dir/units)")
    p.add_argument("--out-scan", required=True)
    p.add_argument("--out-truth", required=True)
    p.set_defaults(func=cmd_injured_scan)

    p = sub.add_parser("ingest", help="clean a raw scan and register the template to it")
    p.add_argument("--space", required=True)
    p.add_argument("--scan", required=True)
    p.add_argument("--units", choices=("mm", "cm", "in", "m", "auto"), default="mm")
    p.add_argument("--settings", help="JSON object of registration settings (config 'registration' block)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--truth", help="true vertices (.npz) to report vertex errors against (synthetic data only)")
    p.add_argument("--out", required=True)
    p.add_argument("--report", required=True)
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("split", help="train/val/test split by subject")
    p.add_argument("--subjects", nargs="+", required=True)
    p.add_argument("--ratios", type=float, nargs=3, default=(0.6, 0.2, 0.2))
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_split)
