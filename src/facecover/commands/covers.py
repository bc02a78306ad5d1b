"""`facecover` subcommands: Mesh to print: watertight, filling, print, preview (rules in workflow/rules/covers.smk)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .. import FacecoverError
from . import settings_from_json


def cmd_watertight(args) -> None:
    from ..files import load_mesh_arrays, save_json, save_mesh
    from ..watertight import WatertightSettings, make_watertight

    v, f, report = make_watertight(*load_mesh_arrays(args.mesh),
                                   WatertightSettings(back_offset_mm=args.back_offset_mm), name=args.mesh)
    if args.report:
        save_json(args.report, report)
    save_mesh(args.out, v, f)


def cmd_filling(args) -> None:
    from ..files import load_mesh_arrays, load_npz, save_json, save_mesh, save_npz
    from ..filling import FillingSettings, cover_solid

    injured, healthy = load_mesh_arrays(args.injured), load_mesh_arrays(args.healthy)
    wound = None
    if args.wound:
        arrays = load_npz(args.wound)
        if "wound" not in arrays:
            raise FacecoverError(f"{args.wound}: no 'wound' array (a mask over the injured mesh's vertices)")
        wound = arrays["wound"]
    settings = settings_from_json(FillingSettings, args.settings)
    openings = None
    if args.space:  # the injured face in template topology: keep the cover off its openings
        openings = load_npz(args.space)["openings"]
        if len(openings) != len(injured[0]):
            raise FacecoverError(f"{args.injured}: {len(injured[0])} vertices, the template has {len(openings)}: "
                                 "--space needs the injured face registered to the template")
    v, f, report = cover_solid(*injured, *healthy, settings, name=args.injured, wound_mask=wound, openings=openings)
    footprint, cover_side = report.pop("footprint"), report.pop("cover_side")
    report.update(injured=args.injured, healthy=args.healthy, wound=args.wound)
    if args.out_footprint:  # the injured vertices under the cover, and which side of the cover each face is
        save_npz(args.out_footprint, footprint=footprint, cover_side=cover_side)
    if args.report:
        save_json(args.report, report)
    save_mesh(args.out, v, f)


def cmd_print(args) -> None:
    import dataclasses
    import json

    import trimesh

    from ..files import atomic_paths, load_mesh, save_json
    from ..printing import (
        PrinterSettings,
        check_printable,
        place_on_bed,
        slice_with_prusaslicer,
        slicer_profile,
    )
    from ..watertight import make_watertight

    printer = settings_from_json(PrinterSettings, args.printer)
    if args.out_mould_gcode and not args.out_mould_stl:
        raise FacecoverError("--out-mould-gcode needs --out-mould-stl")
    if (printer.output != "cover") != bool(args.out_mould_stl):
        raise FacecoverError(f"printer.output is '{printer.output}': give --out-mould-stl exactly when it is "
                             "mould or both")
    cover = load_mesh(args.filling)
    cover_f = np.asarray(cover.faces)
    cover_v = np.asarray(cover.vertices)
    mould = None
    if args.out_mould_stl:  # cast in silicone: the mould is made around the cover as worn
        from ..mould import cover_mould, mould_print_layout

        mould = cover_mould(cover_v, cover_f)
        mould_v, mould_f = mould_print_layout(mould)
        mould_v = place_on_bed(mould_v, mould_f, printer)
        mould["report"]["checks"] = check_printable(mould_v, mould_f, printer, 1.0, name=f"{args.filling} (mould)")
    side, side_source = cover_sides(args.sides, cover_v, cover_f)
    pose = {"pose": printer.pose, "skin_side_from": side_source}
    if printer.pose == "skin_side_free":
        from ..orientation import orient_parts

        cover_v, pose["parts"] = orient_parts(cover_v, cover_f, side)
    cover_v = place_on_bed(cover_v, cover_f, printer)
    checks = check_printable(cover_v, cover_f, printer, args.min_thickness_mm, name=f"{args.filling} (cover)")
    injured = load_mesh(args.injured)
    face_v, face_f, _ = make_watertight(np.asarray(injured.vertices), np.asarray(injured.faces), name=args.injured)
    face_v = place_on_bed(face_v, face_f, printer)
    face_checks = check_printable(face_v, face_f, printer, 0.0, name=f"{args.injured} (fit-test face)")
    mesh = trimesh.Trimesh(cover_v, cover_f, process=False)
    report = {"cover": {"stl": args.out_stl, "volume_mm3": float(mesh.volume),
                        "bounding_box_mm": mesh.bounds.round(3).tolist(), "checks": checks, "pose": pose},
              "face": {"stl": args.out_face_stl, "checks": face_checks},
              "printer": dataclasses.asdict(printer)}
    if args.about:  # where the healthy face came from (subject's split, image, model, wound)
        try:
            report = {"reconstruction": json.loads(Path(args.about).read_text()), **report}
        except (OSError, ValueError) as exc:
            raise FacecoverError(f"{args.about}: cannot read the reconstruction report ({exc})") from None
    outputs = [args.out_stl, args.out_face_stl, args.out_ini] + ([args.out_gcode] if args.out_gcode else [])
    extra = [p for p in (args.out_mould_stl, args.out_mould_gcode) if p]
    with atomic_paths(*outputs, *extra) as tmp:  # all files appear together, or none
        mesh.export(tmp[0], file_type="stl")
        trimesh.Trimesh(face_v, face_f, process=False).export(tmp[1], file_type="stl")
        tmp[2].write_text(slicer_profile(printer))
        if args.out_gcode:
            estimates = slice_with_prusaslicer(tmp[0].resolve(), tmp[2].resolve(), tmp[3].resolve())
            report["gcode"] = {"file": args.out_gcode, **estimates}
            report["support_contact"] = measured_support_contact(tmp[3], cover_v, cover_f, side, printer)
        else:
            report["support_contact"] = estimated_support_contact(cover_v, cover_f, side, printer)
        if mould is not None:
            mould_stl = tmp[len(outputs)]
            trimesh.Trimesh(mould_v, mould_f, process=False).export(mould_stl, file_type="stl")
            report["mould"] = {"stl": args.out_mould_stl, **mould["report"]}
            if args.out_mould_gcode:
                estimates = slice_with_prusaslicer(mould_stl.resolve(), tmp[2].resolve(), tmp[-1].resolve())
                report["mould"]["gcode"] = {"file": args.out_mould_gcode, **estimates}
    save_json(args.out_json, report)
    print(json.dumps({"volume_mm3": round(report["cover"]["volume_mm3"], 1), "size_mm": checks["size_mm"],
                      **report.get("gcode", {})}), file=sys.stderr)


def cover_sides(path, vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, str]:
    """Which side of the cover each face is (filling.SIDE_*): from the filling's `cover_side` array when
    given, else guessed from the canonical pose (faces turned away from the face's +z lie on the skin)."""
    from ..filling import SIDE_OUTER, SIDE_SKIN
    from ..meshtools import face_normals

    if path:
        from ..files import load_npz

        arrays = load_npz(path)
        if "cover_side" in arrays and len(arrays["cover_side"]) == len(faces):
            return np.asarray(arrays["cover_side"], np.int64), f"{path} (cover_side)"
        raise FacecoverError(f"{path}: no 'cover_side' array with one entry per cover face ({len(faces)}): "
                             "make the filling again")
    down = face_normals(vertices, faces)[:, 2] < 0
    return np.where(down, SIDE_SKIN, SIDE_OUTER), "guessed: faces turned away from the face's +z (canonical pose)"


def measured_support_contact(gcode, vertices, faces, side, printer) -> dict:
    """Support contact per side, measured from the sliced G-code (orientation.gcode_support_contact)."""
    from ..orientation import gcode_support_contact

    contact = gcode_support_contact(Path(gcode).read_text(errors="replace"), vertices, faces, side)
    return {"source": "measured: the G-code's support extrusions that touch the part", **contact}


def estimated_support_contact(vertices, faces, side, printer) -> dict:
    """Support contact per side without a slicer: the geometric estimate (orientation.overhang_contact)."""
    from ..meshtools import RayScene, face_components
    from ..orientation import SIDE_NAMES, overhang_contact, standing_contact

    if not printer.support_material:
        return {"source": "no supports (printer.support_material: false)", **{n: 0.0 for n in SIDE_NAMES.values()}}
    labels = face_components(faces)
    parts = []
    for k in np.unique(labels):
        ids = np.unique(faces[labels == k])
        local = np.full(len(vertices), -1)
        local[ids] = np.arange(len(ids))
        pv, pf, ps = vertices[ids], local[faces[labels == k]], side[labels == k]
        up = np.array([0.0, 0.0, 1.0])
        hanging = overhang_contact(pv, pf, ps, up[None])
        standing = standing_contact(pv, pf, ps, up, RayScene(pv, pf))
        parts.append({SIDE_NAMES[s]: float(hanging[s][0] + standing[s]) for s in SIDE_NAMES})
    return {"source": "geometric estimate (no G-code): downward faces flatter than 45 degrees from the horizontal, "
                      "not on the bed, and where the supports under them stand on the part",
            **{n: float(sum(p[n] for p in parts)) for n in SIDE_NAMES.values()}, "parts": parts}


UNOBSERVED_GREY = [0.42, 0.42, 0.45]  # the face beyond a partial scan (not fitted, not covered)


def cmd_preview(args) -> None:
    from ..files import load_mesh_arrays
    from ..render import DEFAULT_LIGHTS, Scene, frontal_camera, save_png

    (face_v, face_f), (cover_v, cover_f) = load_mesh_arrays(args.injured), load_mesh_arrays(args.filling)
    v = np.r_[face_v, cover_v]
    f = np.r_[face_f, cover_f + len(face_v)]
    # a partial scan (infer's wound file holds 'observed'): the part of the face not scanned is drawn dark grey
    unseen = np.zeros(len(face_f), bool)
    if args.wound:
        from ..files import load_npz

        observed = load_npz(args.wound).get("observed")
        if observed is not None and len(observed) == len(face_v):
            unseen = ~observed.astype(bool)[face_f].all(axis=1)
    skin = np.where(unseen[:, None], UNOBSERVED_GREY, [0.85, 0.85, 0.85])
    colors = np.r_[skin, np.tile([0.95, 0.55, 0.15], (len(cover_f), 1))]
    scene = Scene(v, f)
    center = face_v.mean(axis=0)
    images = [scene.render(frontal_camera(center, 230.0, args.size, yaw_deg=yaw), DEFAULT_LIGHTS, face_colors=colors)
              for yaw in (0.0, 35.0, -35.0)]
    if args.wound:  # a fourth view: the face alone, the wound the cover is made for in red
        from ..files import load_npz

        wound = load_npz(args.wound)["wound"].astype(bool)
        if len(wound) != len(face_v):
            raise FacecoverError(f"{args.wound}: its wound has {len(wound)} entries for {len(face_v)} injured vertices")
        red = wound[face_f].all(axis=1)
        images.append(Scene(face_v, face_f).render(
            frontal_camera(center, 230.0, args.size), DEFAULT_LIGHTS,
            face_colors=np.where(red[:, None], [0.85, 0.2, 0.2], skin)))
    save_png(args.out, np.hstack(images).astype(np.uint8))
    if args.out_gap:  # the gap map: the face coloured by the gap under the cover, and its histogram
        from ..filling import skin_gap
        from ..files import load_npz
        from ..summary import gap_colors, gap_figure

        if not args.sides:
            raise FacecoverError("--out-gap needs --sides (the filling's footprint .npz)")
        arrays = load_npz(args.sides)
        if "cover_side" not in arrays or len(arrays["cover_side"]) != len(cover_f):
            raise FacecoverError(f"{args.sides}: no 'cover_side' array with one entry per cover face: make the "
                                 "filling again")
        if len(arrays["footprint"]) != len(face_v):
            raise FacecoverError(f"{args.sides}: its footprint has {len(arrays['footprint'])} entries for "
                                 f"{len(face_v)} injured vertices")
        gap = skin_gap(face_v, arrays["footprint"].astype(bool), cover_v, cover_f, arrays["cover_side"])
        vmax = max(0.5, float(np.nanmax(gap)) if np.isfinite(gap).any() else 0.5)
        face_scene = Scene(face_v, face_f)
        image = face_scene.render(frontal_camera(center, 230.0, args.size), DEFAULT_LIGHTS,
                                  face_colors=gap_colors(gap, face_f, vmax))
        gap_figure(image.astype(np.uint8), gap, vmax, args.out_gap)
    if args.out_html:  # the same, to rotate and zoom in a browser (self-contained WebGL page)
        from ..files import atomic_path
        from ..meshtools import face_components, mesh_volume
        from ..viewer import cover_viewer_html

        caption = f"cover {mesh_volume(cover_v, cover_f):.0f} mm³, {face_components(cover_f).max() + 1} part(s)"
        if unseen.any():
            caption += f"; dark grey: not scanned ({100 * unseen.mean():.0f} % of the face's triangles)"
        page = cover_viewer_html(face_v, face_f, cover_v, cover_f, args.title or args.out, caption,
                                 unobserved_faces=unseen)
        with atomic_path(args.out_html) as tmp:
            tmp.write_text(page)



def register(sub) -> None:
    p = sub.add_parser("watertight", help="remove eyeballs/stray parts, fill holes, close into a solid")
    p.add_argument("--mesh", required=True)
    p.add_argument("--back-offset-mm", type=float, default=10.0)
    p.add_argument("--out", required=True)
    p.add_argument("--report")
    p.set_defaults(func=cmd_watertight)

    p = sub.add_parser("filling", help="the cover solid between injured skin and healthy face")
    p.add_argument("--injured", required=True)
    p.add_argument("--healthy", required=True)
    p.add_argument("--space", help="the face space (.npz): its openings (eyes, nostrils, mouth) get no cover")
    p.add_argument("--settings", help="JSON object of filling settings (config 'filling' block)")
    p.add_argument("--wound", help="the wound: .npz with a boolean 'wound' array over the injured mesh's vertices "
                                   "(default: where the skin departs from the healthy face)")
    p.add_argument("--out", required=True)
    p.add_argument("--report")
    p.add_argument("--out-footprint", help=".npz with the injured vertices under the cover ('footprint')")
    p.set_defaults(func=cmd_filling)

    p = sub.add_parser("print", help="checked STL on the build plate, slicer profile, report, G-code")
    p.add_argument("--filling", required=True)
    p.add_argument("--injured", required=True)
    p.add_argument("--printer", help="JSON object of printer settings (config 'printer' block)")
    p.add_argument("--min-thickness-mm", type=float, default=1.0)
    p.add_argument("--about", help="the reconstruction's report (.json), copied into the print report")
    p.add_argument("--sides", help="the filling's footprint .npz: its 'cover_side' array says which cover faces "
                                   "lie on the skin (default: guessed from the canonical pose)")
    p.add_argument("--out-stl", required=True)
    p.add_argument("--out-face-stl", required=True)
    p.add_argument("--out-ini", required=True)
    p.add_argument("--out-json", required=True)
    p.add_argument("--out-gcode", help="slice with PrusaSlicer into this file")
    p.add_argument("--out-mould-stl", help="a two-part silicone mould around the cover (printer output mould/both)")
    p.add_argument("--out-mould-gcode", help="slice the mould with PrusaSlicer into this file")
    p.set_defaults(func=cmd_print)

    p = sub.add_parser("preview", help="PNG of the cover on the injured face")
    p.add_argument("--injured", required=True)
    p.add_argument("--filling", required=True)
    p.add_argument("--size", type=int, default=384)
    p.add_argument("--title", help="title of the interactive view")
    p.add_argument("--out", required=True)
    p.add_argument("--out-html", help="also an interactive 3D view (self-contained HTML, WebGL)")
    p.add_argument("--sides", help="the filling's footprint .npz (footprint, cover_side), for --out-gap")
    p.add_argument("--wound", help="the wound the cover is made for (.npz with 'wound' over the injured mesh's "
                                   "vertices, as infer writes it): shown in red in a fourth, uncovered view")
    p.add_argument("--out-gap", help="also the gap map: the face coloured by the gap between the cover's skin "
                                     "side and the skin, and its histogram (PNG)")
    p.set_defaults(func=cmd_preview)
