"""`facecover mark`: the page to mark or correct a patient's wound on the scan in a browser
(rule in workflow/rules/mark.smk; the page is built by `facecover.mark`)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

from .. import FacecoverError


def found_wound_in_scan(wound_npz: str, registered_ply: str, registration_report: dict) -> np.ndarray:
    """The wound the fit found (a mask over the registered vertices, canonical frame, mm) as points (k, 3)
    in the scan's own coordinates: the inverse of ingest's scan → ×scale_to_mm → scan_to_canonical."""
    from ..files import load_mesh_arrays, load_npz

    registered = load_mesh_arrays(registered_ply)[0]
    wound = load_npz(wound_npz).get("wound")
    if wound is None or wound.shape != (len(registered),):
        raise FacecoverError(f"{wound_npz}: needs a boolean 'wound' array with one entry per registered vertex "
                             f"({len(registered)}, {registered_ply})")
    T = np.asarray(registration_report["scan_to_canonical"], np.float64)
    canonical = registered[wound.astype(bool)]
    return ((canonical - T[:3, 3]) @ np.linalg.inv(T[:3, :3]).T) / float(registration_report.get("scale_to_mm", 1.0))


def can_open_browser() -> bool:
    """Whether a browser window can be shown here (a display, or a non-Linux desktop)."""
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def cmd_mark(args) -> None:
    from ..files import atomic_path, load_mesh_arrays
    from ..mark import marking_page_html

    scan_v, scan_f = load_mesh_arrays(args.scan)
    try:
        report = json.loads(Path(args.registration).read_text())
        T = np.asarray(report["scan_to_canonical"], np.float64)
    except (OSError, ValueError, KeyError) as exc:
        raise FacecoverError(f"{args.registration}: not an ingest report with scan_to_canonical ({exc})") from None
    scale = float(report.get("scale_to_mm", 1.0))
    found = None
    if args.wound:
        if not args.registered:
            raise FacecoverError("mark --wound needs --registered (the registered scan the mask is over)")
        found = found_wound_in_scan(args.wound, args.registered, report)
    title = args.title or f"{Path(args.scan).parent.name}: mark the wound"
    caption = (f"red: the wound the fit found ({len(found)} template vertices); correct it and Save"
               if found is not None and len(found) else "nothing marked yet: paint the wound, then Save")
    page = marking_page_html(scan_v, scan_f, found, title=title, scale_to_mm=scale,
                             brush_radius_mm=args.brush_radius_mm, view_rotation=T[:3, :3], caption=caption)
    with atomic_path(args.out) as tmp:
        tmp.write_text(page)
    print(f"{args.out}: marking page ({len(page) / 1e6:.1f} MB); save wound.json into the patient's folder "
          "and rerun", file=sys.stderr)
    if args.open:
        if can_open_browser():
            import webbrowser

            webbrowser.open(Path(args.out).resolve().as_uri())
        else:
            print(Path(args.out).resolve())


def register(sub) -> None:
    p = sub.add_parser("mark", help="a page to mark or correct the wound on the patient's scan in a browser "
                                    "(saves wound.json)")
    p.add_argument("--scan", required=True, help="the patient's raw scan (patients/{id}/scan.ply ...)")
    p.add_argument("--registration", required=True, help="its ingest report (results/registered/{id}.json)")
    p.add_argument("--registered", help="the registered scan (results/registered/{id}.ply), with --wound")
    p.add_argument("--wound", help="the wound found by inference (results/reconstructions/{id}_wound.npz); "
                                   "without it the page starts with nothing marked")
    p.add_argument("--brush-radius-mm", type=float, default=3.0, help="the brush's starting radius (mm)")
    p.add_argument("--title")
    p.add_argument("--out", required=True, help="the page (.html, self-contained)")
    p.add_argument("--open", action="store_true", help="open it in a browser when there is one (else print "
                                                       "its path)")
    p.set_defaults(func=cmd_mark)
