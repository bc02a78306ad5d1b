"""`facecover` subcommands: Tables and figures over all subjects (rules in workflow/rules/report.smk)."""

from __future__ import annotations

from .. import FacecoverError


def cmd_summary(args) -> None:
    from ..files import atomic_path
    from ..summary import (
        covers_table,
        encoder_figure,
        encoder_table,
        registration_figure,
        registration_table,
    )

    if args.kind == "encoder":
        if not args.encoder_report:
            raise FacecoverError("--kind encoder needs --encoder-report (the encoder stage's JSON)")
        table = encoder_table(args.encoder_report, args.reports)
    else:
        table = registration_table(args.reports) if args.kind == "registration" else covers_table(args.reports)
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)
    if args.figure:
        (encoder_figure(args.encoder_report, args.figure) if args.kind == "encoder"
         else registration_figure(table, args.figure))



def register(sub) -> None:
    p = sub.add_parser("summary", help="table (and figure) over all subjects for the report")
    p.add_argument("--kind", choices=("registration", "covers", "encoder"), required=True)
    p.add_argument("--reports", nargs="+", required=True,
                   help="per-subject .json reports (encoder: the subjects' embedding caches, .npz)")
    p.add_argument("--encoder-report", help="encoder only: the encoder stage's .json")
    p.add_argument("--out", required=True, help=".csv table")
    p.add_argument("--figure", help="registration: .png bar chart; encoder: .png training curves")
    p.set_defaults(func=cmd_summary)
