"""Mesh-to-print stages: watertight, filling (reference cover) and print."""

import json

import numpy as np
import pytest
import trimesh
from scipy.sparse.csgraph import dijkstra

from facecover import FacecoverError
from facecover.cli import main
from facecover.cohort import flame_structured_head, person_rng, person_vertices
from facecover.files import save_mesh
from facecover.filling import (FillingSettings, _fill_pinches, cover_solid, enforce_min_distance, smoothed_normals,
                               thickened_patch)
from facecover.meshtools import boundary_loops, compact, edge_graph, vertex_normals
from facecover.printing import (MATERIALS, PrinterSettings, check_printable, place_on_bed, slice_with_prusaslicer,
                                slicer_profile)
from facecover.scars import one_scar, prepare_face
from facecover.watertight import make_watertight


@pytest.fixture(scope="module")
def healthy(space):
    return person_vertices(space, person_rng(3, "cohort", "subject07"), with_detail=True)


@pytest.fixture(scope="module")
def healthy_solid(space, healthy):
    return make_watertight(healthy, space["faces"])


def test_flame_structured_mesh_becomes_watertight_without_eyeballs(space, healthy):
    mesh = flame_structured_head(space, healthy)
    assert len(boundary_loops(np.asarray(mesh.faces))) == 2  # mouth and neck
    v, f, report = make_watertight(np.asarray(mesh.vertices), np.asarray(mesh.faces))
    solid = trimesh.Trimesh(v, f, process=False)
    assert solid.is_watertight and solid.is_winding_consistent and solid.volume > 0
    assert report["components"] == 3 and report["dropped_vertices"] == 2 * 546
    assert solid.body_count == 1


def _flame_layout_head() -> trimesh.Trimesh:
    """A head with FLAME's vertex layout built here from primitives (not by `make_watertight`): 5023
    vertices, the head first (3931: an ellipsoid shell, 150 x 200 x 180 mm, open at the neck, with a
    mouth slit), then two closed eyeball shells of 546 vertices each at FLAME's indices 3931-4476 and
    4477-5022, inside the head behind the eyes."""
    rings, cols = 30, 131
    theta = np.linspace(0, np.radians(150), rings + 1)[1:]
    phi = np.linspace(0, 2 * np.pi, cols, endpoint=False)
    T, P = np.meshgrid(theta, phi, indexing="ij")
    v = np.r_[[[0.0, 100.0, 0.0]], np.c_[75 * (np.sin(T) * np.sin(P)).ravel(), 100 * np.cos(T).ravel(),
                                           90 * (np.sin(T) * np.cos(P)).ravel()]]
    idx = 1 + np.arange(rings * cols).reshape(rings, cols)
    f = [[0, idx[0, j], idx[0, (j + 1) % cols]] for j in range(cols)]
    mouth = {(19, c % cols) for c in range(-3, 4)}  # a slit of 7 quads in front, every vertex kept
    for r in range(rings - 1):
        for c in range(cols):
            if (r, c) not in mouth:
                a, b, d, e = idx[r, c], idx[r, (c + 1) % cols], idx[r + 1, (c + 1) % cols], idx[r + 1, c]
                f += [[a, d, b], [a, e, d]]
    parts = [trimesh.Trimesh(v, np.array(f), process=False)]
    for x in (-32.0, 32.0):
        ball = trimesh.creation.uv_sphere(radius=12.0, count=[10, 34])
        ball.apply_translation([x, 35.0, 60.0])
        parts.append(ball)
    return trimesh.util.concatenate(parts)


def test_flame_eyeballs_are_removed_from_a_flame_layout_head():
    """The FLAME branch (5023 vertices): the eyeball shells at FLAME's indices are dropped, mouth and
    neck closed, one watertight body with the head's volume."""
    mesh = _flame_layout_head()
    assert len(mesh.vertices) == 5023 and len(boundary_loops(np.asarray(mesh.faces))) == 2
    head = trimesh.Trimesh(mesh.vertices[:3931], mesh.faces[mesh.faces.max(axis=1) < 3931], process=False)
    v, f, report = make_watertight(np.asarray(mesh.vertices), np.asarray(mesh.faces))
    solid = trimesh.Trimesh(v, f, process=False)
    assert report["flame_eyeballs_removed"] is True
    assert report["components"] == 3 and report["dropped_vertices"] == 2 * 546
    assert solid.is_watertight and solid.is_winding_consistent and solid.body_count == 1
    assert solid.volume == pytest.approx(head.convex_hull.volume, rel=0.03)  # the head, closed
    assert solid.contains([[-32.0, 35.0, 60.0], [32.0, 35.0, 60.0]]).all()  # no eyeball cavities left


def test_open_face_closes_with_a_flat_back(space, healthy_solid, healthy):
    v, f, report = healthy_solid
    assert report["closed_with_back_plane"]
    assert np.isclose(v[:, 2].min(), healthy[:, 2].min() - 10.0)
    assert trimesh.Trimesh(v, f, process=False).is_watertight


def reference_volume(injured, faces, healthy, displacement, settings):
    """Volume of the cover built from the simulation's own correspondence: the healthy face (known
    vertex for vertex) where the skin lies deeper than the minimum wall, else the minimum wall along the
    skin normal, with the same closest-distance guarantee for the wall. No ray casting, no smoothing.
    Built at the cover's resolution (the skin subdivided the same way, displacement interpolated)."""
    for _ in range(settings.subdivisions):
        both = np.c_[injured, healthy, displacement]
        both, faces = trimesh.remesh.subdivide(both, faces)
        injured, healthy, displacement = both[:, :3], both[:, 3:6], both[:, 6]
    wound = np.abs(displacement) > settings.wound_threshold_mm
    reach = dijkstra(edge_graph(injured, faces), directed=False, indices=np.flatnonzero(wound),
                     limit=settings.margin_mm, min_only=True)
    selected = _fill_pinches(faces, np.isfinite(reach)[faces].all(axis=1))
    pv, pf, ids = compact(injured, faces[selected])
    fill = -displacement[ids] > settings.min_thickness_mm
    offset = np.where(fill[:, None], -displacement[ids][:, None] * vertex_normals(healthy, faces)[ids],
                      settings.min_thickness_mm * smoothed_normals(injured, faces, settings.crease_smoothing_mm)[ids])
    length = np.linalg.norm(offset, axis=1)
    outer = enforce_min_distance(pv, pf, length, offset / length[:, None], settings.min_thickness_mm)
    sv, sf = thickened_patch(pv, outer, pf, settings.edge_radius_mm)  # the same rounded rim (tested on its own)
    return trimesh.Trimesh(sv, sf, process=False).volume


@pytest.mark.parametrize("kind, region, sign", [
    ("round", "cheek_left", -1), ("round", "forehead", -1), ("elongated", "cheek_right", -1),
    ("round", "chin", +1), ("elongated", "forehead", +1)])
def test_reference_cover_matches_the_simulated_wound(space, healthy, healthy_solid, kind, region, sign):
    settings = FillingSettings()
    face = prepare_face(healthy, space["faces"], space["regions"])
    for seed in range(20):  # find a wound of the requested sign
        h, (_, _, _, _, depth) = one_scar(face, kind, region, np.random.default_rng(seed))
        if np.sign(depth) == sign and np.abs(h).max() > 1.5:
            break
    injured = healthy + h[:, None] * face.normals
    v, f, report = cover_solid(injured, space["faces"], *healthy_solid[:2], settings)
    solid = trimesh.Trimesh(v, f, process=False)
    assert solid.is_watertight and solid.is_winding_consistent
    expected = reference_volume(injured, space["faces"], healthy, h, settings)
    assert solid.volume == pytest.approx(expected, rel=0.02)
    between = np.clip(-h, 0, None)
    if sign < 0:
        assert report["max_depression_mm"] == pytest.approx(between.max(), abs=0.15)


def test_no_wound_and_misaligned_meshes_are_errors(space, healthy, healthy_solid):
    v, f, _ = healthy_solid
    with pytest.raises(FacecoverError, match="no wound"):
        cover_solid(healthy, space["faces"], v, f)
    with pytest.raises(FacecoverError, match="not aligned or not at the same scale"):
        cover_solid(healthy, space["faces"], v * 0.001, f)
    with pytest.raises(FacecoverError, match="not aligned or not at the same scale"):
        cover_solid(healthy * 1.1, space["faces"], v, f)


def test_print_checks(space, healthy):
    printer = PrinterSettings()
    box = trimesh.creation.box(extents=(20, 20, 5))
    placed = place_on_bed(np.asarray(box.vertices), np.asarray(box.faces), printer)
    checks = check_printable(placed, np.asarray(box.faces), printer, 1.0, "box")
    assert checks["fits_printer"] and np.isclose(placed[:, 2].min(), 0) and np.allclose(placed[:, :2].mean(0), 112.5)
    big = trimesh.creation.box(extents=(230, 20, 5))
    with pytest.raises(FacecoverError, match=r"big.*230\.0 × 20\.0 × 5\.0 mm.*printer takes 205 × 205 × 265"):
        check_printable(np.asarray(big.vertices), np.asarray(big.faces), printer, 1.0, "big")
    thin = trimesh.creation.box(extents=(20, 20, 0.4))
    with pytest.raises(FacecoverError, match="thin"):
        check_printable(np.asarray(thin.vertices), np.asarray(thin.faces), printer, 1.0, "thin")
    open_box = trimesh.Trimesh(box.vertices, box.faces[:-2], process=False)
    with pytest.raises(FacecoverError, match="not a closed manifold"):
        check_printable(np.asarray(open_box.vertices), np.asarray(open_box.faces), printer, 1.0, "open")
    ini = slicer_profile(printer)
    for line in ("temperature = 210", "bed_temperature = 60", "perimeter_speed = 120.0", "layer_height = 0.2",
                 "gcode_flavor = marlin", "use_relative_e_distances = 1", "layer_gcode = G92 E0",
                 "bed_shape = 0x0,225x0,225x225,0x225", "nozzle_diameter = 0.4", "filament_diameter = 1.75"):
        assert line in ini


def test_print_check_measures_walls_at_their_thickness():
    """Slabs just either side of the refusal line (0.9 × a 1.0 mm minimum = 0.9 mm): 0.85 mm is refused,
    0.95 mm accepted, and the reported wall is the slab's thickness."""
    printer = PrinterSettings()
    # measured: the 5th percentile of the sampled walls is 0.8500 and 0.9500 mm (to 1e-7); walls measured
    # twice as thick (1.70 mm) would pass the thin slab, half as thick (0.475 mm) refuse the thick one
    thin = trimesh.creation.box(extents=(20, 20, 0.85))
    with pytest.raises(FacecoverError, match=r"thin.*walls as thin as 0\.85 mm"):
        check_printable(np.asarray(thin.vertices), np.asarray(thin.faces), printer, 1.0, "thin")
    ok = trimesh.creation.box(extents=(20, 20, 0.95))
    checks = check_printable(np.asarray(ok.vertices), np.asarray(ok.faces), printer, 1.0, "ok")
    assert checks["wall_thickness_p5_mm"] == pytest.approx(0.95, abs=1e-3)


def filled(space, healthy, healthy_solid, tmp_path, region: str, seed: int, *filling_args) -> np.ndarray:
    """A round scar on `region` of the healthy face, the injured and the healthy solid written to tmp_path
    (injured.ply, healthy.ply) and `facecover filling` run on them (fill.ply, + `filling_args`); returns the
    injured vertices (mm)."""
    face = prepare_face(healthy, space["faces"], space["regions"])
    h, _ = one_scar(face, "round", region, np.random.default_rng(seed))
    injured = healthy + h[:, None] * face.normals
    save_mesh(tmp_path / "injured.ply", injured, space["faces"])
    save_mesh(tmp_path / "healthy.ply", *healthy_solid[:2])
    assert main(["filling", "--injured", str(tmp_path / "injured.ply"), "--healthy", str(tmp_path / "healthy.ply"),
                 *filling_args, "--out", str(tmp_path / "fill.ply")]) == 0
    return injured


def test_print_cli_writes_checked_stl_profile_gcode_and_report(space, healthy, healthy_solid, tmp_path, capsys):
    import shutil

    injured = filled(space, healthy, healthy_solid, tmp_path, "cheek_left", 1,
                     "--out-footprint", str(tmp_path / "fill_footprint.npz"))
    out = tmp_path / "prints"
    args = ["print", "--filling", str(tmp_path / "fill.ply"), "--injured", str(tmp_path / "injured.ply"),
            "--sides", str(tmp_path / "fill_footprint.npz"), "--out-stl", str(out / "s.stl"), "--out-face-stl", str(out / "s_face.stl"),
            "--out-ini", str(out / "s.ini"), "--out-json", str(out / "s.json")]
    slicer = shutil.which("prusa-slicer") is not None
    if slicer:
        args += ["--out-gcode", str(out / "s.gcode")]
    assert main(args) == 0
    report = json.loads((out / "s.json").read_text())
    for stl in ("s.stl", "s_face.stl"):
        mesh = trimesh.load(out / stl)
        assert mesh.is_watertight and mesh.volume > 0 and np.isclose(mesh.bounds[0, 2], 0.0)
    assert report["cover"]["checks"]["fits_printer"]
    if slicer:
        assert (out / "s.gcode").stat().st_size > 1000
        assert report["gcode"]["print_time_s"] > 0 and report["gcode"]["filament_g"] > 0
        assert report["support_contact"]["source"].startswith("measured")
    else:
        assert report["support_contact"]["source"].startswith("geometric estimate")
    # turned skin side up: nothing hangs from the skin side
    assert report["cover"]["pose"]["pose"] == "skin_side_free"
    assert report["support_contact"]["skin_side_mm2"] == 0.0
    # a bed the cover fits on but the fit-test face does not: the error names the fit-test face, and
    # nothing is left behind
    size = np.ptp(np.array(report["cover"]["bounding_box_mm"]), axis=0)
    bed = float(max(size[:2]) + 2 * report["printer"]["skirt_margin_mm"] + 5.0)
    bad = tmp_path / "bad"
    capsys.readouterr()
    code = main(["print", "--filling", str(tmp_path / "fill.ply"), "--injured", str(tmp_path / "injured.ply"),
                 "--printer", json.dumps({"bed_x_mm": bed, "bed_y_mm": bed}),
                 "--out-stl", str(bad / "s.stl"), "--out-face-stl", str(bad / "s_face.stl"),
                 "--out-ini", str(bad / "s.ini"), "--out-json", str(bad / "s.json")])
    err = capsys.readouterr().err
    assert code == 1
    assert "injured.ply (fit-test face): the part is" in err, err
    assert not bad.exists() or not any(bad.iterdir())


def test_slicer_failure_is_a_clear_error_and_writes_nothing(space, healthy, healthy_solid, tmp_path, monkeypatch,
                                                           capsys):
    filled(space, healthy, healthy_solid, tmp_path, "forehead", 2)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "prusa-slicer").write_text("#!/bin/sh\necho 'Objects could not fit on the bed' >&2\nexit 134\n")
    (fake / "prusa-slicer").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{__import__('os').environ['PATH']}")
    out = tmp_path / "prints"
    code = main(["print", "--filling", str(tmp_path / "fill.ply"), "--injured", str(tmp_path / "injured.ply"),
                 "--out-stl", str(out / "s.stl"), "--out-face-stl", str(out / "s_face.stl"),
                 "--out-ini", str(out / "s.ini"), "--out-json", str(out / "s.json"), "--out-gcode", str(out / "s.gcode")])
    assert code == 1
    err = capsys.readouterr().err
    assert "PrusaSlicer failed (exit 134)" in err and "could not fit on the bed" in err
    assert not out.exists() or not any(out.iterdir())


def test_materials_give_their_profiles_and_bad_names_are_clear_errors():
    pla = slicer_profile(PrinterSettings())
    assert "temperature = 210" in pla and "retract_length = 2" in pla and "first_layer_speed = 30" in pla
    assert PrinterSettings().material == "pla" and PrinterSettings().filament_type == "PLA"
    tpu = PrinterSettings(material="tpu95a")
    assert tpu.print_speed_mm_s <= 30 and tpu.nozzle_temperature_c == 225
    ini = slicer_profile(tpu)
    assert "retract_length = 0.5" in ini and "max_volumetric_speed = 3.5" in ini and "filament_type = FLEX" in ini
    assert PrinterSettings(material="petg", nozzle_temperature_c=235).nozzle_temperature_c == 235  # config wins
    # turned skin side up, supports come from the bed only (none may stand on the skin side); as worn, the
    # profile is the one PLA always had
    assert "support_material_buildplate_only = 1" in pla
    assert "buildplate_only" not in slicer_profile(PrinterSettings(pose="as_worn"))
    with pytest.raises(FacecoverError, match="printer.material: 'abs' is not one of pla, petg, tpu95a"):
        PrinterSettings(material="abs")
    with pytest.raises(FacecoverError, match="printer.pose"):
        PrinterSettings(pose="upside")


@pytest.mark.skipif(__import__("shutil").which("prusa-slicer") is None,
                    reason="prusa-slicer is not installed (apt-get install prusa-slicer): a profile is only known to "
                           "work once the real slicer has sliced with it")
@pytest.mark.parametrize("material", list(MATERIALS))
def test_every_material_profile_slices(material, tmp_path):
    """A 20 × 20 × 3 mm plate (about 2 s to slice) with each profile: G-code at the material's temperature."""
    printer = PrinterSettings(material=material)
    box = trimesh.creation.box(extents=(20, 20, 3))
    trimesh.Trimesh(place_on_bed(np.asarray(box.vertices), np.asarray(box.faces), printer), box.faces,
                    process=False).export(tmp_path / "plate.stl")
    (tmp_path / "p.ini").write_text(slicer_profile(printer))
    estimates = slice_with_prusaslicer(tmp_path / "plate.stl", tmp_path / "p.ini", tmp_path / "plate.gcode")
    gcode = (tmp_path / "plate.gcode").read_text()
    assert f"M109 S{printer.nozzle_temperature_c}" in gcode
    assert estimates["print_time_s"] > 0 and estimates["filament_g"] > 0


def test_print_cli_makes_the_mould_when_asked(space, healthy, healthy_solid, tmp_path):
    filled(space, healthy, healthy_solid, tmp_path, "cheek_left", 1)
    out = tmp_path / "prints"
    args = ["print", "--filling", str(tmp_path / "fill.ply"), "--injured", str(tmp_path / "injured.ply"),
            "--out-stl", str(out / "s.stl"), "--out-face-stl", str(out / "s_face.stl"), "--out-ini", str(out / "s.ini"),
            "--out-json", str(out / "s.json")]
    assert main(args + ["--printer", json.dumps({"output": "both"})]) == 1  # the mould's file is missing
    assert main(args + ["--printer", json.dumps({"output": "both"}), "--out-mould-stl", str(out / "s_mould.stl")]) == 0
    report = json.loads((out / "s.json").read_text())["mould"]
    assert report["checks"]["watertight"] and report["checks"]["fits_printer"]
    assert len(report["checks"]["part_volumes_mm3"]) == 2  # the two halves
    cover_volume = json.loads((out / "s.json").read_text())["cover"]["volume_mm3"]
    assert report["cavity_volume_mm3"] == pytest.approx(cover_volume, rel=0.02)
    assert trimesh.load(out / "s_mould.stl").volume > 0


def test_gap_map_shows_the_clearance(space, healthy, healthy_solid, tmp_path):
    """A cover with a 0.4 mm fit gap: the gap map's distances under the cover are 0.4 mm (measured over the
    61 skin vertices under it: median 0.397, min 0.375, max 0.400 mm — the skin side is offset along
    crease-smoothed normals, and a closest-point distance is at most that offset; tolerance 0.01 mm on the
    median and the max), and the preview writes the map."""
    from facecover.files import load_mesh_arrays, load_npz
    from facecover.filling import skin_gap

    injured = filled(space, healthy, healthy_solid, tmp_path, "cheek_left", 1, "--settings",
                     json.dumps({"clearance_mm": 0.4}), "--out-footprint", str(tmp_path / "fp.npz"))
    arrays = load_npz(tmp_path / "fp.npz")
    gap = skin_gap(injured, arrays["footprint"].astype(bool),
                   *load_mesh_arrays(tmp_path / "fill.ply"), arrays["cover_side"])
    under = gap[np.isfinite(gap)]
    assert len(under) == arrays["footprint"].sum() > 0
    assert np.median(under) == pytest.approx(0.4, abs=0.01) and under.max() <= 0.4 + 0.01
    assert main(["preview", "--injured", str(tmp_path / "injured.ply"), "--filling", str(tmp_path / "fill.ply"),
                 "--size", "96", "--sides", str(tmp_path / "fp.npz"), "--out", str(tmp_path / "p.png"),
                 "--out-gap", str(tmp_path / "gap.png")]) == 0
    assert (tmp_path / "gap.png").stat().st_size > 1000
