"""The silicone mould against a sphere: its cavity is the part, its halves part straight up, it prints."""

import json
import shutil

import numpy as np
import pytest
import trimesh

from facecover import FacecoverError
from facecover.filling import thickened_patch
from facecover.meshtools import DistanceScene, closed_and_consistent, mesh_volume
from facecover.mould import MouldSettings, cavity_check, cover_mould, mould_print_layout
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


def test_the_cavity_check_measures_the_cavity_made(sphere_mould):
    """`cavity_check` (the acceptance's measure: the block minus the halves as made, less the channels): the
    sphere's cavity is the sphere; a mould made around a sphere 0.3 mm larger is found 0.3 mm and 9.3 % off."""
    v, f, mould = sphere_mould
    check = cavity_check(v, f, mould)
    assert check["cavity_pieces"] == 1
    assert abs(check["volume_diff_percent"]) < 0.01 and check["distance_max_mm"] < 0.01, check
    wrong = cover_mould(v * (RADIUS + 0.3) / RADIUS, f)
    off = cavity_check(v, f, wrong)
    assert off["volume_diff_percent"] == pytest.approx(100 * ((RADIUS + 0.3) ** 3 / RADIUS**3 - 1), abs=0.2)
    assert off["distance_max_mm"] == pytest.approx(0.3, abs=0.02) and off["cover_to_cavity_max_mm"] > 0.25


def dome_cover(radius: float = 8.0, curve_mm: float = 20.0, thick: float = 2.0, step: float = 1.0):
    """A cover-like shell: a round patch (`radius`, rings `step` apart) of a dome — skin side
    z = -r² / (2 `curve_mm`), highest in the middle as a cheek seen from below — `thick` mm thick along z,
    its rim rounded (0.5 mm) by `thickened_patch`."""
    from scipy.spatial import Delaunay

    xy = [np.zeros(2)]
    for r in np.arange(step, radius + 1e-9, step):
        k = max(6, int(round(2 * np.pi * r / step)))
        a = np.arange(k) * 2 * np.pi / k + r
        xy += list(np.c_[r * np.cos(a), r * np.sin(a)])
    xy = np.array(xy)
    tri = Delaunay(xy).simplices
    inner = np.c_[xy, -(xy**2).sum(axis=1) / (2 * curve_mm)]
    up = np.cross(inner[tri[:, 1]] - inner[tri[:, 0]], inner[tri[:, 2]] - inner[tri[:, 0]])[:, 2] > 0
    tri = np.where(up[:, None], tri, tri[:, ::-1])
    return thickened_patch(inner, inner + [0, 0, thick], tri, edge_radius_mm=0.5)


def test_no_film_cut_off_a_half_is_left_as_cavity():
    """Under a skin side curved like a dome, the parting surface (linear between its 0.5 mm samples) runs
    just below the skin, so the cover cut thin films off the upper half there; they were dropped and left as
    cavity (measured on this dome: 0.36 mm³ of silicone beyond the cover, 0.01 mm thick; on a held-out patient's cover
    0.2 mm³, up to 0.103 mm thick). Each goes to the other half now: the cavity is the cover."""
    v, f = dome_cover()
    mould = cover_mould(v, f)
    check = cavity_check(v, f, mould)
    assert mould["report"]["slivers_dropped_mm3"] < 1e-3
    assert check["cavity_outside_cover_mm3"] < 1e-3 and check["cover_outside_cavity_mm3"] < 1e-3, check
    assert check["distance_max_mm"] < 0.01 and abs(check["volume_diff_percent"]) < 0.001, check
    for half in ("lower", "upper"):
        hv, hf = mould[half]
        assert closed_and_consistent(hf) == (True, True) and mesh_volume(hv, hf) > 0


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


def test_a_long_mould_is_laid_out_across_the_bed():
    """A cover of two parts far apart (here two spheres 120 mm apart) has a long mould block: its halves side
    by side along its length did not fit the bed (cohort subject30: 254.8 mm on 205 mm); across it they do."""
    a = trimesh.creation.icosphere(subdivisions=2, radius=5.0)
    b = a.copy()
    b.apply_translation([120.0, 0.0, 0.0])
    both = trimesh.util.concatenate([a, b])
    mould = cover_mould(np.asarray(both.vertices), np.asarray(both.faces), MouldSettings(grid_mm=2.0))
    printer = PrinterSettings()
    v, f = mould_print_layout(mould)
    v = place_on_bed(v, f, printer)
    checks = check_printable(v, f, printer, 1.0, "mould")
    assert len(checks["part_volumes_mm3"]) == 2 and checks["fits_printer"]
    assert checks["size_mm"][0] == pytest.approx(120 + 10 + 2 * 8, abs=0.1)  # the block's length, not twice it
    assert checks["size_mm"][1] == pytest.approx(2 * (10 + 2 * 8) + 10, abs=0.1)  # two widths and the gap


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
