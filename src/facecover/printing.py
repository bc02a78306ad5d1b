"""Printable STL, checks, PrusaSlicer profile and G-code for a cover (mm).

The printer is an Elegoo Neptune 4 Pro (bed 225 × 225 mm, height 265 mm,
0.4 mm nozzle, 1.75 mm filament, Klipper firmware) printing 0.2 mm layers in
PLA (the default: 210 °C nozzle, 60 °C bed, 120 mm/s), PETG or TPU 95A
(`MATERIALS`; values from config override the material's).
PrusaSlicer 2.5 has no Klipper flavour: Marlin G-code with relative E and a
``G92 E0`` per layer is what Klipper accepts.

Each part is turned so that no support touches its skin side (the side lying
on the wound; `orientation.py`, `pose: skin_side_free`), or left as worn on
the face (`pose: as_worn`: the canonical +z of the face up, the skin side down
on supports), then centred on the bed with its lowest point at z = 0, and
checked before anything is written: watertight, consistently
wound, every part of positive volume, minimum wall thickness, and inside the
bed minus a skirt margin. PrusaSlicer is not trusted for these: it does not
check the height, aborts on parts wider than the bed and silently repairs
small holes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import FacecoverError
from .meshtools import RayScene, closed_and_consistent, face_components, face_normals, mesh_volume, sample_surface


POSES = ("skin_side_free", "as_worn")
OUTPUTS = ("cover", "mould", "both")

# PrusaSlicer 2.5 filament values per material for the Neptune 4 Pro (direct drive, 0.4 mm nozzle, Klipper).
# `settings` become PrinterSettings fields (a config value overrides them); `slicer` go straight into the
# .ini. PLA keeps exactly what its profile has always sliced with (PrusaSlicer's defaults for retraction and
# cooling), so the default G-code is unchanged. PETG: hotter, slower, little fan (layer bonding), a short
# retraction with a small z-hop against stringing. TPU 95A: slow and volume-limited (a flexible filament
# buckles when pushed hard), little retraction (a long one stretches and jams it), cooling on.
MATERIALS = {
    "pla": {
        "settings": {"filament_type": "PLA", "filament_density_g_cm3": 1.24, "nozzle_temperature_c": 210,
                     "bed_temperature_c": 60, "print_speed_mm_s": 120.0},
        "slicer": {"first_layer_speed": 30, "max_volumetric_speed": 0, "retract_length": 2, "retract_speed": 40,
                   "retract_lift": 0, "cooling": 1, "fan_always_on": 0, "min_fan_speed": 35, "max_fan_speed": 100,
                   "bridge_fan_speed": 100, "disable_fan_first_layers": 3},
    },
    "petg": {
        "settings": {"filament_type": "PETG", "filament_density_g_cm3": 1.27, "nozzle_temperature_c": 240,
                     "bed_temperature_c": 80, "print_speed_mm_s": 80.0},
        "slicer": {"first_layer_speed": 25, "max_volumetric_speed": 10, "retract_length": 1, "retract_speed": 30,
                   "retract_lift": 0.2, "cooling": 1, "fan_always_on": 1, "min_fan_speed": 30, "max_fan_speed": 50,
                   "bridge_fan_speed": 100, "disable_fan_first_layers": 3},
    },
    "tpu95a": {
        "settings": {"filament_type": "FLEX", "filament_density_g_cm3": 1.21, "nozzle_temperature_c": 225,
                     "bed_temperature_c": 50, "print_speed_mm_s": 25.0},
        "slicer": {"first_layer_speed": 15, "max_volumetric_speed": 3.5, "retract_length": 0.5, "retract_speed": 20,
                   "retract_lift": 0, "cooling": 1, "fan_always_on": 1, "min_fan_speed": 50, "max_fan_speed": 100,
                   "bridge_fan_speed": 100, "disable_fan_first_layers": 3},
    },
}


@dataclass(frozen=True)
class PrinterSettings:
    """The printer and the material (mm, °C, mm/s). Values left at None come from `material`'s profile."""
    bed_x_mm: float = 225.0
    bed_y_mm: float = 225.0
    max_height_mm: float = 265.0
    skirt_margin_mm: float = 10.0
    nozzle_diameter_mm: float = 0.4
    filament_diameter_mm: float = 1.75
    material: str = "pla"  # pla | petg | tpu95a (MATERIALS)
    filament_type: str | None = None
    filament_density_g_cm3: float | None = None
    nozzle_temperature_c: int | None = None
    bed_temperature_c: int | None = None
    print_speed_mm_s: float | None = None
    travel_speed_mm_s: float = 200.0
    layer_height_mm: float = 0.2
    perimeters: int = 2
    fill_density_percent: int = 20
    support_material: bool = True
    pose: str = "skin_side_free"  # skin_side_free: least support on the skin side | as_worn: as it sits on the face
    output: str = "cover"  # cover | mould (a two-part mould to cast it in silicone) | both: what is sliced

    def __post_init__(self):
        if self.pose not in POSES:
            raise FacecoverError(f"printer.pose: '{self.pose}' is not one of {', '.join(POSES)}")
        if self.output not in OUTPUTS:
            raise FacecoverError(f"printer.output: '{self.output}' is not one of {', '.join(OUTPUTS)}")
        if self.material not in MATERIALS:
            raise FacecoverError(f"printer.material: '{self.material}' is not one of {', '.join(MATERIALS)}")
        for key, value in MATERIALS[self.material]["settings"].items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)


def place_on_bed(vertices: np.ndarray, faces: np.ndarray, printer: PrinterSettings) -> np.ndarray:
    """Drop every separate part onto the bed (its lowest point at z = 0), keeping their layout
    as seen from above, and centre the whole set on the bed."""
    vertices = vertices.copy()
    labels = face_components(faces)
    for k in np.unique(labels):
        ids = np.unique(faces[labels == k])
        vertices[ids, 2] -= vertices[ids, 2].min()
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    shift = np.array([printer.bed_x_mm / 2, printer.bed_y_mm / 2, 0.0]) - np.r_[(lo[:2] + hi[:2]) / 2, lo[2]]
    return vertices + shift


def wall_thickness(vertices: np.ndarray, faces: np.ndarray, samples: int = 4000, seed: int = 0) -> np.ndarray:
    """Local wall thickness (k,) mm at sampled surface points: distance along the inward normal to the far side.

    Only rays leaving through a roughly opposite-facing surface count, so
    a ray that grazes out through a part's rim is not taken for a thin wall.
    """
    normals = face_normals(vertices, faces)
    points, face_idx, _ = sample_surface(vertices, faces, samples, seed=seed)
    inward = -normals[face_idx]
    hit = RayScene(vertices, faces).cast(points + 1e-3 * inward, inward)
    t = hit["t_hit"]
    ok = np.isfinite(t)
    exit_normal = normals[np.where(ok, hit["triangle"], 0)]
    across = ok & (np.einsum("ij,ij->i", exit_normal, inward) > 0.7)
    return t[across] + 1e-3


def check_printable(vertices: np.ndarray, faces: np.ndarray, printer: PrinterSettings, min_thickness_mm: float,
                    name: str) -> dict:
    """Raise FacecoverError naming `name` unless the placed part can be printed; return the checks."""
    used = vertices[np.unique(faces)]
    size = used.max(axis=0) - used.min(axis=0)
    watertight, consistent = closed_and_consistent(np.asarray(faces))
    checks = {"watertight": watertight, "winding_consistent": consistent}
    if not checks["watertight"] or not checks["winding_consistent"]:
        raise FacecoverError(f"{name}: not a closed manifold solid (watertight={checks['watertight']}, "
                             f"consistent winding={checks['winding_consistent']})")
    labels = face_components(np.asarray(faces))
    volumes = [mesh_volume(vertices, faces[labels == k]) for k in np.unique(labels)]
    checks["part_volumes_mm3"] = [float(v) for v in volumes]
    if min(volumes) <= 0:
        raise FacecoverError(f"{name}: a part has non-positive volume ({min(volumes):.2f} mm³): inside-out or flat")
    # sampled wall thickness; part rims and sharp ridges give a few short rays
    # that are not walls, so the 5th percentile is what must reach the minimum
    thick = wall_thickness(vertices, faces)
    checks["wall_thickness_p5_mm"] = float(np.percentile(thick, 5)) if len(thick) else 0.0
    if min_thickness_mm > 0 and checks["wall_thickness_p5_mm"] < 0.9 * min_thickness_mm:
        raise FacecoverError(f"{name}: walls as thin as {checks['wall_thickness_p5_mm']:.2f} mm "
                             f"(5th percentile; minimum {min_thickness_mm} mm)")
    room = np.array([printer.bed_x_mm - 2 * printer.skirt_margin_mm, printer.bed_y_mm - 2 * printer.skirt_margin_mm,
                     printer.max_height_mm])
    checks["size_mm"] = size.round(2).tolist()
    checks["fits_printer"] = bool((size <= room).all())
    if not checks["fits_printer"]:
        raise FacecoverError(f"{name}: the part is {size[0]:.1f} × {size[1]:.1f} × {size[2]:.1f} mm; the printer "
                             f"takes {room[0]:.0f} × {room[1]:.0f} × {room[2]:.0f} mm (bed minus skirt margin)")
    return checks


def slicer_profile(printer: PrinterSettings) -> str:
    """PrusaSlicer 2.5 .ini for the printer and material (MATERIALS)."""
    p = printer
    speed = p.print_speed_mm_s
    values = {
        "bed_shape": f"0x0,{p.bed_x_mm:g}x0,{p.bed_x_mm:g}x{p.bed_y_mm:g},0x{p.bed_y_mm:g}",
        "max_print_height": p.max_height_mm,
        "nozzle_diameter": p.nozzle_diameter_mm,
        "filament_diameter": p.filament_diameter_mm,
        "filament_type": p.filament_type,
        "filament_density": p.filament_density_g_cm3,
        "temperature": p.nozzle_temperature_c,
        "first_layer_temperature": p.nozzle_temperature_c,
        "bed_temperature": p.bed_temperature_c,
        "first_layer_bed_temperature": p.bed_temperature_c,
        "layer_height": p.layer_height_mm,
        "first_layer_height": p.layer_height_mm,
        "perimeters": p.perimeters,
        "fill_density": f"{p.fill_density_percent}%",
        "perimeter_speed": speed,
        "external_perimeter_speed": speed,
        "infill_speed": speed,
        "solid_infill_speed": speed,
        "top_solid_infill_speed": speed,
        "support_material_speed": speed,
        "travel_speed": p.travel_speed_mm_s,
        "support_material": int(p.support_material),
        "skirts": 1,
        "skirt_distance": 3,
        "gcode_flavor": "marlin",
        "use_relative_e_distances": 1,
        "layer_gcode": "G92 E0",
        "start_gcode": f"G28\\nM190 S{p.bed_temperature_c}\\nM109 S{p.nozzle_temperature_c}\\nG92 E0",
        "end_gcode": "M104 S0\\nM140 S0\\nG28 X\\nM84",
    }
    if p.pose == "skin_side_free":  # supports from the bed only: none may stand on the part's (skin) side
        values["support_material_buildplate_only"] = 1
    values.update(MATERIALS[p.material]["slicer"])
    values["first_layer_speed"] = min(speed, values["first_layer_speed"])
    lines = ["# facecover PrusaSlicer 2.5 profile: Elegoo Neptune 4 Pro (Klipper; Marlin-flavoured G-code), "
             f"{p.material}"]
    lines += [f"{k} = {v}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def parse_gcode_estimates(gcode: str) -> dict:
    """Print time (s) and filament (g) from PrusaSlicer's closing comment lines."""
    out = {}
    m = re.search(r"^; estimated printing time \(normal mode\) = (.+)$", gcode, re.M)
    if m:
        text = m.group(1).strip()
        units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
        out["print_time"] = text
        out["print_time_s"] = int(sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([dhms])", text)))
    m = re.search(r"^; (?:total )?filament used \[g\] = ([\d.]+)", gcode, re.M)
    if m:
        out["filament_g"] = float(m.group(1))
    return out


def slice_with_prusaslicer(stl: Path, ini: Path, gcode: Path, slicer: str = "prusa-slicer",
                           timeout_s: float = 600) -> dict:
    """Run PrusaSlicer's CLI (absolute paths) into `gcode`; return its estimates."""
    if shutil.which(slicer) is None:
        raise FacecoverError(f"{slicer}: not found on PATH (install prusa-slicer or set printer gcode: never)")
    with tempfile.TemporaryDirectory() as work:
        cmd = [slicer, "--loglevel", "1", "--config-compatibility", "disable", "--load", str(ini),
               "--support-material", "--export-gcode", "-o", str(gcode), str(stl)]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=work,
                                 stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise FacecoverError(f"{stl}: PrusaSlicer did not finish in {timeout_s:.0f} s") from None
    if res.returncode != 0 or not gcode.exists() or gcode.stat().st_size == 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
        raise FacecoverError(f"{stl}: PrusaSlicer failed (exit {res.returncode}): {' | '.join(tail)}")
    return parse_gcode_estimates(gcode.read_text(errors="replace"))
