"""`facecover` subcommands: Tables and figures over all subjects (rules in workflow/rules/report.smk)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import FacecoverError
from . import load_space, settings_from_json


def cmd_summary(args) -> None:
    from ..summary import covers_table, encoder_figure, encoder_table, registration_figure, registration_table, write_csv

    if args.kind == "encoder":
        if not args.encoder_report:
            raise FacecoverError("--kind encoder needs --encoder-report (the encoder stage's JSON)")
        table = encoder_table(args.encoder_report, args.reports)
    else:
        table = registration_table(args.reports) if args.kind == "registration" else covers_table(args.reports)
    write_csv(table, args.out)
    if args.figure:
        (encoder_figure(args.encoder_report, args.figure) if args.kind == "encoder"
         else registration_figure(table, args.figure))



def cmd_learning_report(args) -> None:
    """Figures of the learning stages: loss curves, wound IoU per region, error heat maps of three test
    subjects (image only, and fitted to the injured scan)."""
    import pandas as pd

    from ..files import load_mesh_arrays, load_npz
    from ..learn.data import load_embeddings, read_split, subjects_in
    from ..learn.decoder import decode, load_decoder
    from ..learn.evaluate import align_outside_wound
    from ..learn.infer import FitSettings, choose_experiment, fit_healthy_face, fit_nuisance
    from ..learn.network import load_mapping
    from ..learn.train import predict_coefficients
    from ..summary import error_heatmap_figure, iou_figure, learning_curves_figure

    table = pd.read_csv(args.table)
    logs = {Path(p).stem.removesuffix("_train"): p for p in args.finetune_logs}
    learning_curves_figure(args.base_log, {Path(p).stem.split("_", 1)[1]: p for p in args.swav_logs}, logs,
                           args.out_curves)
    iou_figure(table, args.out_iou)
    space = load_space(args.space)
    decoder = load_decoder(args.decoder, len(space["vertices"]))
    experiment = choose_experiment(table, list(logs))
    net, _ = load_mapping(Path(args.checkpoints_dir) / f"recon_{experiment}.pt", len(decoder["basis"]))
    noise = load_npz(args.fit_noise)["noise_mm"]
    fit_settings = settings_from_json(FitSettings, args.fit_settings)
    nuisance = fit_nuisance(space, fit_settings)
    panels = []
    for s in subjects_in(read_split(args.split), "test", args.split)[:3]:
        cache = load_embeddings(Path(args.embeddings_dir) / f"{s}.npz")
        stem = f"{args.variant}_0"
        z = predict_coefficients(net, cache["clean"][[list(cache["stem"]).index(stem)]])[0]
        healthy = load_mesh_arrays(Path(args.registered_dir) / f"{s}.ply")[0]
        injured = load_mesh_arrays(Path(args.scars_dir) / s / f"{args.variant}.ply")[0]
        wound = load_npz(Path(args.scars_dir) / s / f"{args.variant}.npz")["mask"].astype(bool)
        image_only = align_outside_wound(decode(decoder, z), injured, wound)
        fitted = fit_healthy_face(decoder, injured, space["faces"], z, noise, fit_settings, nuisance=nuisance,
                                  openings=space.get("openings"))["healthy"]
        for label, v in ((experiment, image_only), (f"{experiment}+fit", fitted)):
            err = np.linalg.norm(v - healthy, axis=1)
            panels.append({"vertices": v, "error_mm": err, "wound": wound,
                           "title": f"{s} {label}: wound {err[wound].mean():.2f} mm"})
    error_heatmap_figure(space["faces"], panels, args.out_heatmap)


def cmd_stage_times(args) -> None:
    from ..files import atomic_path
    from ..summary import stage_figure, stage_table

    stages, jobs = stage_table(args.benchmarks)
    with atomic_path(args.out) as tmp:
        stages.to_csv(tmp, index=False)
    if args.out_jobs:
        with atomic_path(args.out_jobs) as tmp:
            jobs.to_csv(tmp, index=False)
    if args.figure:
        stage_figure(stages, args.figure)


def register(sub) -> None:
    p = sub.add_parser("summary", help="table (and figure) over all subjects for the report")
    p.add_argument("--kind", choices=("registration", "covers", "encoder"), required=True)
    p.add_argument("--reports", nargs="+", required=True,
                   help="per-subject .json reports (encoder: the subjects' embedding caches, .npz)")
    p.add_argument("--encoder-report", help="encoder only: the encoder stage's .json")
    p.add_argument("--out", required=True, help=".csv table")
    p.add_argument("--figure", help="registration: .png bar chart; encoder: .png training curves")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("learning-report", help="figures of the learning stages for the report")
    p.add_argument("--table", required=True)
    p.add_argument("--base-log", required=True)
    p.add_argument("--swav-logs", nargs="+", required=True, help="results/metrics/swav_<fraction>.csv")
    p.add_argument("--finetune-logs", nargs="+", required=True, help="results/metrics/<experiment>_train.csv")
    p.add_argument("--space", required=True)
    p.add_argument("--decoder", required=True)
    p.add_argument("--checkpoints-dir", required=True)
    p.add_argument("--fit-noise", required=True)
    p.add_argument("--fit-settings", help="JSON object of the config 'fit' block")
    p.add_argument("--split", required=True)
    p.add_argument("--embeddings-dir", required=True)
    p.add_argument("--registered-dir", required=True)
    p.add_argument("--scars-dir", required=True)
    p.add_argument("--variant", required=True, help="the scar variant shown (the patient variant)")
    p.add_argument("--out-curves", required=True)
    p.add_argument("--out-iou", required=True)
    p.add_argument("--out-heatmap", required=True)
    p.set_defaults(func=cmd_learning_report)

    p = sub.add_parser("stage-times", help="time and peak memory per stage from Snakemake's benchmark files")
    p.add_argument("--benchmarks", nargs="+", required=True)
    p.add_argument("--out", required=True, help="per-stage table (.csv)")
    p.add_argument("--out-jobs", help="per-job table (.csv)")
    p.add_argument("--figure", help="bar charts (.png)")
    p.set_defaults(func=cmd_stage_times)
