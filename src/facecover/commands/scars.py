"""`facecover` subcommands: Scar simulation and rendering (rules in workflow/rules/scars.smk)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import FacecoverError
from . import load_space, settings_from_json


def cmd_scars(args) -> None:
    from ..seeds import person_rng
    from ..files import load_mesh_arrays, save_mesh, save_npz
    from ..scars import ScarSettings, prepare_face, simulate_scars

    space = load_space(args.space)
    settings = settings_from_json(ScarSettings, args.settings)
    healthy = load_mesh_arrays(args.registered)[0]
    if len(healthy) != len(space["vertices"]):
        raise FacecoverError(f"{args.registered}: {len(healthy)} vertices, expected the template's "
                             f"{len(space['vertices'])} (is it a registered mesh?)")
    face = prepare_face(healthy, space["faces"], space["regions"], settings)
    out = Path(args.out_dir)
    for variant in args.variants:
        result = simulate_scars(face, person_rng(args.seed, "scars", f"{args.subject}/{variant}"), settings)
        save_npz(out / f"{variant}.npz", **{k: v for k, v in result.items() if k != "vertices"})
        save_mesh(out / f"{variant}.ply", result["vertices"], space["faces"])


def _render_person(settings, seed: int, space: dict, vertices: np.ndarray, rng_name: str, out: Path,
                   stem: str) -> None:
    """Render one face under the views of `settings` (ViewSettings); write `{stem}_{k}.png` and `.json` per view."""
    from ..seeds import person_rng
    from ..files import save_json
    from ..render import render_views, save_png, view_setups
    from ..template import ARCFACE_LANDMARKS, landmark_positions

    setups = view_setups(person_rng(seed, "render", rng_name), settings.views,
                         settings.max_yaw_deg, settings.max_pitch_deg, settings.max_roll_deg)
    views = render_views(vertices, space["faces"], landmark_positions(space, vertices), setups, settings.size,
                         settings.field_mm)
    for k, view in enumerate(views):
        save_png(out / f"{stem}_{k}.png", view["image"])
        save_json(out / f"{stem}_{k}.json", {
            "arcface_landmarks_px": view["landmarks_px"].round(3).tolist(),
            "landmark_names": list(ARCFACE_LANDMARKS),
            "camera": view["camera"].as_dict(), "lights": view["lights"].tolist(), "pose_deg": view["pose_deg"]})


def cmd_render(args) -> None:
    from tqdm import tqdm

    from ..files import load_mesh_arrays
    from ..render import ViewSettings

    space = load_space(args.space)
    settings = settings_from_json(ViewSettings, args.settings)
    for variant in tqdm(args.variants, desc=f"render {args.subject}", disable=None):
        v = load_mesh_arrays(Path(args.scars_dir) / f"{variant}.ply")[0]
        _render_person(settings, args.seed, space, v, f"{args.subject}/{variant}", Path(args.out_dir), variant)


def cmd_render_pool(args) -> None:
    from tqdm import tqdm

    from ..files import load_npz
    from ..render import ViewSettings

    space = load_space(args.space)
    settings = settings_from_json(ViewSettings, args.settings)
    pool = load_npz(args.pool)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    people = list(zip(pool["names"], pool["vertices"].astype(np.float64)))
    for name, v in tqdm(people, desc="render pool", disable=None):
        _render_person(settings, args.seed, space, v, str(name), out, str(name))


def cmd_contact_sheet(args) -> None:
    from PIL import Image

    from ..files import load_npz
    from ..render import contact_sheet, save_png

    rows, labels = [], []
    for variant in args.variants:
        images = sorted(Path(args.renders_dir).glob(f"{variant}_*.png"), key=lambda p: int(p.stem.split("_")[-1]))
        if not images:
            raise FacecoverError(f"{args.renders_dir}: no renders of variant {variant}")
        rows.append([np.asarray(Image.open(p).convert("L")) for p in images])
        scars = load_npz(Path(args.scars_dir) / f"{variant}.npz")
        labels.append(f"{variant}: " + ", ".join(f"{k} {r} {d:+.1f}mm" for k, r, d in zip(
            scars["scar_kind"], scars["scar_region"], scars["scar_depth_mm"])))
    save_png(args.out, contact_sheet(rows, labels))


def _add_view_args(p) -> None:
    p.add_argument("--settings", help="JSON object of view settings (config 'render' block: views, size, "
                                      "field_mm, max_yaw_deg, max_pitch_deg, max_roll_deg)")
    p.add_argument("--seed", type=int, required=True)



def register(sub) -> None:
    p = sub.add_parser("scars", help="simulate wound variants on a registered face")
    p.add_argument("--space", required=True)
    p.add_argument("--registered", required=True)
    p.add_argument("--subject", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--variants", nargs="+", required=True)
    p.add_argument("--settings", help="JSON object of scar settings (config 'scars' block)")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_scars)

    p = sub.add_parser("render", help="render every injured variant of a subject")
    p.add_argument("--space", required=True)
    p.add_argument("--scars-dir", required=True)
    p.add_argument("--subject", required=True)
    p.add_argument("--variants", nargs="+", required=True)
    _add_view_args(p)
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("render-pool", help="render the clean pool identities")
    p.add_argument("--space", required=True)
    p.add_argument("--pool", required=True)
    _add_view_args(p)
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_render_pool)

    p = sub.add_parser("contact-sheet", help="one PNG with every variant and view of a subject")
    p.add_argument("--renders-dir", required=True)
    p.add_argument("--scars-dir", required=True)
    p.add_argument("--variants", nargs="+", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_contact_sheet)
