"""The silicone mould against a sphere: its cavity is the part, its halves part straight up, it prints."""

import json
import shutil

import numpy as np
import pytest
import trimesh

from facecover import FacecoverError
from facecover.meshtools import DistanceScene, closed_and_consistent, mesh_volume
from facecover.mould import cover_mould, mould_print_layout
from facecover.printing import PrinterSettings, check_printable, place_on_bed, slice_with_prusaslicer, slicer_profile

RADIUS = 10.0  # mm


@pytest.fixture(scope="module")
def sphere_mould():
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=RADIUS)
    v, f = np.asarray(sphere.vertices), np.asarray(sphere.faces)
    return v, f, cover_mould(v, f)


def test_halves_are_closed_solids_and_the_cavity_is_the_part(sphere_mould):
    v, f, mould = sphere_mould
    for half in ("lower", "upper"):
        hv, hf = mould[half]
        assert closed_and_consistent(hf) == (True, True) and mesh_volume(hv, hf) > 0
    report = mould["report"]
    # volume: measured 4179.73895 against the part's 4179.73895 mm³ (the part is subtracted exactly): 2 %
    assert report["cavity_volume_mm3"] == pytest.approx(mesh_volume(v, f), rel=0.02)
    assert report["silicone_mm3"] > report["cavity_volume_mm3"]  # plus the sprue and vents
    # shape: the part's surface lies on the halves' surfaces (measured max 7e-7 mm away) except where the
    # sprue and the vents open into it: 0.1 mm
    points = trimesh.sample.sample_surface_even(trimesh.Trimesh(v, f, process=False), 3000, seed=0)[0]
    openings = np.array([report["sprue_mm"]] + report["vents_mm"])
    radii = np.r_[report["settings"]["sprue_radius_mm"], [report["settings"]["vent_radius_mm"]] * 4]
    near = (np.linalg.norm(points[:, None, :2] - openings[None, :, :2], axis=2) < radii + 0.2).any(axis=1)
    lv, lf = mould["lower"]
    uv, uf = mould["upper"]
    distance = DistanceScene(np.r_[lv, uv], np.r_[lf, uf + len(lv)])(points[~near])
    assert distance.max() <= 0.1, distance.max()


def test_halves_part_straight_up(sphere_mould):
    """Every vertical line through the cavity meets the lower half, then the cavity, then the upper half:
    no mould material of the upper half under the part, none of the lower half over it."""
    v, f, mould = sphere_mould
    lower = trimesh.Trimesh(*mould["lower"], process=False)
    upper = trimesh.Trimesh(*mould["upper"], process=False)
    xy = np.random.default_rng(0).uniform(-RADIUS * 0.95, RADIUS * 0.95, (400, 2))
    xy = xy[np.linalg.norm(xy, axis=1) < RADIUS * 0.95]
    origins = np.c_[xy, np.full(len(xy), -100.0)]
    up = np.tile([0, 0, 1.0], (len(xy), 1))
    for mesh, limit in ((lower, "top"), (upper, "bottom")):
        hits, rays, _ = mesh.ray.intersects_location(origins, up, multiple_hits=True)
        part_bottom = -np.sqrt(RADIUS**2 - (xy**2).sum(axis=1))
        part_top = -part_bottom
        z = hits[:, 2]
        if limit == "top":  # the lower half's material ends at the part's bottom
            assert (z <= part_bottom[rays] + 0.05).all()
        else:  # the upper half's material starts at the part's top (or its channels go up from it)
            assert (z >= part_top[rays] - 0.05).all()


@pytest.mark.skipif(shutil.which("prusa-slicer") is None, reason="prusa-slicer is not installed (apt-get install "
                    "prusa-slicer): the mould is only known to print once the real slicer has sliced it")
def test_a_small_mould_checks_and_slices(tmp_path):
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=4.0)
    mould = cover_mould(np.asarray(sphere.vertices), np.asarray(sphere.faces))
    printer = PrinterSettings(pose="as_worn")
    v, f = mould_print_layout(mould)
    v = place_on_bed(v, f, printer)
    checks = check_printable(v, f, printer, 1.0, "mould")
    assert len(checks["part_volumes_mm3"]) == 2 and checks["fits_printer"]
    trimesh.Trimesh(v, f, process=False).export(tmp_path / "mould.stl")
    (tmp_path / "p.ini").write_text(slicer_profile(printer))
    estimates = slice_with_prusaslicer(tmp_path / "mould.stl", tmp_path / "p.ini", tmp_path / "mould.gcode")
    assert estimates["print_time_s"] > 0 and estimates["filament_g"] > 0


def test_mould_output_needs_its_file():
    with pytest.raises(FacecoverError, match="printer.output: 'cast'"):
        PrinterSettings(output="cast")
