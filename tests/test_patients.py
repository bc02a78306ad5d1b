"""Patients end to end: a wound on the true surface scanned raw, registered, found, covered and scored in the
scan's frame against the true surfaces; implausible wounds stop (mm)."""

from pathlib import Path

import numpy as np
import pytest

from facecover.cohort import ScanSettings, disk_parameterization, injured_surface, synthetic_scan
from facecover.cover_scores import found_wound_iou, patient_case, score_cover
from facecover.heldout import dent, patient_faces, wound_site
from facecover.learn.infer import FitSettings, fit_noise, fit_nuisance, implausible_wound, mesh_operators
from facecover.meshtools import DistanceScene, vertex_areas


def product_fit_settings() -> FitSettings:
    """The fit's settings as config.yaml sets them (what the workflow runs)."""
    from pathlib import Path

    import yaml

    return FitSettings(**yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())["fit"])


def registered_healthy_scans(space, folder, count: int = 6) -> np.ndarray:
    """Healthy people scanned raw and registered (N, 3) each: what the workflow measures the fit's noise on
    (its training subjects' scans), registration noise included."""
    from facecover.cohort import person_rng, person_vertices
    from facecover.files import save_mesh
    from facecover.ingest import ingest_scan

    uv = disk_parameterization(space["vertices"], space["faces"])
    out = []
    for i in range(count):
        rng = person_rng(9, "cohort", f"train{i}")
        v, f, _ = synthetic_scan(person_vertices(space, rng, with_detail=True), space["faces"], uv, rng)
        save_mesh(folder / f"train{i}.ply", v, f)
        out.append(ingest_scan(folder / f"train{i}.ply", space).vertices)
    return np.stack(out)


@pytest.fixture(scope="module")
def ict_face(space):
    """A held-out face in ICT-FaceKit's own topology (asymmetric: one side wider, a cheek fuller)."""
    return patient_faces(space, "asymmetric", 1, seed=5)[0]


def test_injured_raw_scan_reproduces_a_known_dent(space, ict_face):
    """A 3 mm dent of 12 mm radius on the cheek, scanned without noise: the scan departs from the healthy
    surface by the dent's depth at most, and over the dent's footprint (a dent read at half depth, or at
    half the radius, misses both)."""
    face = ict_face
    centre = wound_site(face, "cheek_left")
    h = dent(face, centre, 12.0, -3.0)
    injured = injured_surface(face.vertices, face.faces, h, 4.0)
    assert np.isclose(np.linalg.norm(injured - face.vertices, axis=1).max(), 3.0, atol=0.02)
    uv = disk_parameterization(face.vertices, face.faces)
    scan_v, scan_f, pose = synthetic_scan(injured, face.faces, uv, np.random.default_rng(0),
                                          ScanSettings(noise_mm=0.0, holes=0))
    back = (scan_v - pose[:3, 3]) @ pose[:3, :3]  # the scan in the true canonical frame
    off = DistanceScene(face.vertices, face.faces)(back)
    # the deepest scan point lies a little off the centre (1.2 mm point spacing): 2.83 mm measured
    assert 2.7 < off.max() < 3.05, off.max()
    measured = vertex_areas(back, scan_f)[off > 0.1].sum()  # scan points off the healthy surface, by their areas
    # the dent is deeper than 0.1 mm within r = 12 acos(2·0.1/3 − 1)/π = 10.6 mm: π r² = 353 mm² on a flat
    # cheek; measured 340 mm² (a dent half as wide or on another part of the face would be far off)
    radius = 12.0 * np.arccos(2 * 0.1 / 3.0 - 1) / np.pi
    assert abs(measured / (np.pi * radius**2) - 1) < 0.1, measured
    # the dent sits where it was put: its deepest scan point is within 2 mm of the centre vertex
    assert np.linalg.norm(back[np.argmax(off)] - injured[centre]) < 2.0


def test_cover_scores_on_exact_and_wrong_covers(space, ict_face):
    """score_cover on covers built from the true surfaces: the true healthy face over the wound restores it
    (0 mm) and touches the skin; a cover 1 mm too high restores and touches at about 1 mm; a cover beside
    the wound covers none of it."""
    from facecover.filling import FillingSettings, cover_solid

    face = ict_face
    h = dent(face, wound_site(face, "forehead"), 14.0, -3.0)
    injured = injured_surface(face.vertices, face.faces, h, 4.0)
    wound = np.abs(h) > 0.1
    v, f, _ = cover_solid(injured, face.faces, face.vertices, face.faces, FillingSettings(), wound_mask=wound)
    good = score_cover(v, f, face.vertices, injured, face.faces, wound)
    assert good["restore_mean_mm"] < 0.05 and good["contact_mm"] < 0.05 and good["coverage"] > 0.97, good
    high = score_cover(v + [0, 0, 1.0], f, face.vertices, injured, face.faces, wound)
    # measured: restore 0.66 mm, contact 0.96 mm (the forehead is not flat: part of the 1 mm lift is tangential)
    assert 0.5 < high["restore_mean_mm"] < 1.05 and 0.8 < high["contact_mm"] < 1.05 and high["coverage"] == 1.0, high
    aside = score_cover(v + [40.0, 0, 0], f, face.vertices, injured, face.faces, wound)
    assert aside["coverage"] < 0.05 and np.isnan(aside["contact_mm"]), aside  # no skin under it
    iou = found_wound_iou(injured, face.faces, wound, injured, wound)
    assert iou["found_iou"] == 1.0
    shifted = found_wound_iou(injured, face.faces, wound, injured + [0, 8.0, 0], wound)
    assert shifted["found_iou"] < 0.75


@pytest.fixture(scope="module")
def registered_noise(space, model, tmp_path_factory):
    """The fit's noise (N,) mm measured on six registered healthy scans, as the workflow measures it."""
    decoder, _ = model
    folder = tmp_path_factory.mktemp("healthy_scans")
    settings = product_fit_settings()
    return fit_noise(decoder, space["faces"], registered_healthy_scans(space, folder), settings,
                     fit_nuisance(space, settings))


@pytest.mark.slow  # registers 8 raw scans: 1-5 minutes
def test_known_wound_on_an_ict_face_is_found_end_to_end_and_an_uninjured_scan_gets_no_cover(space, model,
                                                                                          registered_noise, tmp_path):
    """From raw scans of an ICT-FaceKit person (a new one, made like the cohort's), the fit's noise measured on
    six registered healthy scans as the workflow does: the dent is found and covered (restore and contact under half a millimetre, most of the wound under the
    cover); the same face uninjured gives a false wound under 50 mm² and no implausible wound."""
    decoder, _ = model
    settings = product_fit_settings()
    noise = registered_noise
    face = patient_faces(space, "cohort", 1, seed=5)[0]
    h = dent(face, wound_site(face, "cheek_right"), 13.0, -3.0)
    injured = patient_case(space, decoder, noise, settings, face, h, np.random.default_rng(1), tmp_path)
    # measured 0.47 (found 835 mm² for a true 395: this test's decoder, 60 components from 120 people, follows
    # the face less closely than the workflow's from 1600, and each part is widened by 0.3 of its radius;
    # 0.63 before the expression/smooth modes and the widening); a fit that misses the dent falls to 0
    assert injured["found_iou"] >= 0.4, injured
    # restore measured 0.52 mm (0.12 before the widening: the blend now spans the wider wound); a cover made
    # from the injured skin (no restoring) leaves the dent's mean depth, ~1.5 mm
    assert injured["restore_mean_mm"] < 0.7 and injured["coverage"] > 0.9, injured
    assert not injured["implausible"] and not injured["cover_touches_opening"], injured
    clean = patient_case(space, decoder, noise, settings, face, None, np.random.default_rng(2), tmp_path)
    assert clean["found_mm2"] < 50.0 and not clean["implausible"], clean


def test_implausible_wounds_are_named(space):
    """A wound in six scattered parts, one over a fifth of the face, one touching an eye opening: each is
    named; a single cheek patch is plausible."""
    v, f = space["vertices"], space["faces"]
    ops = mesh_operators(v, f)
    regions = list(space["region_names"])
    rng = np.random.default_rng(0)
    cheek = np.flatnonzero(space["regions"] == regions.index("cheek_left"))
    centre = v[cheek[len(cheek) // 2]]
    patch = np.linalg.norm(v - centre, axis=1) < 8.0
    assert implausible_wound(patch, space["openings"], ops) == []
    face = np.flatnonzero(space["regions"] != regions.index("other"))
    spots = np.zeros(len(v), bool)
    for c in rng.choice(face, 60, replace=False)[::10]:
        spots |= np.linalg.norm(v - v[c], axis=1) < 2.5
    assert any("separate parts" in r for r in implausible_wound(spots, space["openings"], ops))
    big = np.linalg.norm(v - centre, axis=1) < 45.0
    assert any("% of the face" in r for r in implausible_wound(big, space["openings"], ops))
    eye = v[(space["openings"] == 1) & (v[:, 0] > 0)].mean(axis=0)  # the left eye's opening
    lid = np.linalg.norm(v - eye, axis=1) < 6.0
    assert any("eye opening" in r for r in implausible_wound(lid, space["openings"], ops))


@pytest.mark.slow  # registers the patient's scan and the six healthy scans of the noise model: 1-3 minutes
def test_a_patient_folder_goes_from_scan_and_photo_to_a_checked_print(space, space_file, model, registered_noise,
                                                                       tmp_path):
    """patients/jane/ holds a raw scan (an ICT-FaceKit person with a 3 mm dent of 13 mm radius on the right
    cheek, own triangulation, noise, holes, random pose) and a photo. It goes through the commands the
    workflow runs for a patient — ingest, infer --photo (the photo's face through an ArcFace ONNX and a
    mapping network; the wound found, the patient's stop for an implausible one), watertight, filling with
    the wound found (cover_solid(wound_mask=...)) and the face's openings, print — to a checked print. The
    cover, carried into the scan's frame with the ingest report's pose, is scored against the true surfaces.
    Measured: the asserts below carry the figures (871 mm² found for a true 395 on 2026-12-03, 578 before
    the fit's modes, widening and raised skin: this test's 60-component decoder follows the face less
    closely than the workflow's); a cover beside the wound or 1 mm off gives coverage under 0.05 or restore and contact near 1 mm
    (`test_cover_scores_on_exact_and_wrong_covers`), a fit that misses the dent an IoU near 0."""
    import json
    import shutil

    import yaml

    from facecover.cli import main
    from facecover.encoder import export_onnx, identity_network
    from facecover.files import load_mesh_arrays, load_npz, save_mesh, save_npz
    from facecover.learn.network import mapping_network, save_checkpoint
    from facecover.meshtools import apply_transform

    decoder, _ = model
    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())
    # the patient: a raw scan of the injured true surface (the slow test above scans the same case)
    face = patient_faces(space, "cohort", 1, seed=5)[0]
    h = dent(face, wound_site(face, "cheek_right"), 13.0, -3.0)
    true_injured = injured_surface(face.vertices, face.faces, h, 4.0)
    uv = disk_parameterization(face.vertices, face.faces)
    scan_v, scan_f, pose = synthetic_scan(true_injured, face.faces, uv, np.random.default_rng(1), ScanSettings())
    folder = tmp_path / "patients" / "jane"
    folder.mkdir(parents=True)
    save_mesh(folder / "scan.ply", scan_v, scan_f)
    photos = Path(__import__("insightface").__file__).parent / "data" / "images"
    shutil.copy(photos / "Tom_Hanks_54745.png", folder / "photo.png")
    # the models the workflow would have made: decoder, a fine-tuned mapping network (here one predicting the
    # mean face, the prior the fit's tests use), an ArcFace ONNX (untrained: it only has to run), the noise
    model_dir, out = tmp_path / "model", tmp_path / "results"
    save_npz(model_dir / "decoder.npz", mean=decoder["mean"], basis=decoder["basis"])
    save_npz(model_dir / "fit_noise.npz", noise_mm=registered_noise)
    net = mapping_network(len(decoder["basis"]))
    torch = pytest.importorskip("torch")
    with torch.no_grad():
        net.head[1].weight.zero_(), net.head[1].bias.zero_()
    save_checkpoint(model_dir / "checkpoints" / "recon_nossl.pt", net.state_dict(), kind="mapping",
                    n_coefficients=len(decoder["basis"]))
    torch.manual_seed(0)
    export_onnx(identity_network().eval(), model_dir / "arcface.onnx")

    def run(*args):
        assert main([str(a) for a in args]) == 0, args[0]

    run("ingest", "--space", space_file, "--scan", folder / "scan.ply", "--out", out / "registered.ply",
        "--report", out / "registered.json")
    run("infer", "--subject", "jane", "--space", space_file, "--decoder", model_dir / "decoder.npz",
        "--experiment", "nossl", "--checkpoints-dir", model_dir / "checkpoints", "--photo", folder / "photo.png",
        "--encoder", model_dir / "arcface.onnx", "--device", "cpu", "--registration", out / "registered.json",
        "--injured", out / "registered.ply", "--fit-noise", model_dir / "fit_noise.npz", "--fit-settings",
        json.dumps(config["fit"]), "--on-implausible", "stop", "--out", out / "healthy.ply", "--out-wound",
        out / "wound.npz", "--report", out / "infer.json")
    run("watertight", "--mesh", out / "healthy.ply", "--back-offset-mm", config["watertight"]["back_offset_mm"],
        "--out", out / "watertight.ply", "--report", out / "watertight.json")
    run("filling", "--injured", out / "registered.ply", "--healthy", out / "watertight.ply", "--wound",
        out / "wound.npz", "--space", space_file, "--settings", json.dumps(config["filling"]), "--out",
        out / "filling.ply", "--report", out / "filling.json", "--out-footprint", out / "footprint.npz")
    printer = {k: v for k, v in config["printer"].items() if k != "gcode"}
    run("print", "--filling", out / "filling.ply", "--sides", out / "footprint.npz", "--injured",
        out / "registered.ply", "--printer", json.dumps(printer), "--min-thickness-mm",
        config["filling"]["min_thickness_mm"], "--about", out / "infer.json", "--out-stl", out / "jane.stl",
        "--out-face-stl", out / "jane_face.stl", "--out-ini", out / "jane.ini", "--out-json", out / "jane.json")

    about = json.loads((out / "infer.json").read_text())
    assert about["image"]["faces_found"] == 1 and about["wound_source"] == "found by the fit", about
    printed = json.loads((out / "jane.json").read_text())
    assert printed["cover"]["checks"]["fits_printer"] and printed["cover"]["volume_mm3"] > 0, printed["cover"]
    assert (out / "jane.stl").stat().st_size > 10_000
    # the cover in the scan's frame (the ingest report's pose) against the true surfaces
    to_scan = np.linalg.inv(np.asarray(json.loads((out / "registered.json").read_text())["scan_to_canonical"]))
    move = lambda p: apply_transform(pose, p)  # noqa: E731  true canonical -> scan frame
    wound = np.abs(h) > 0.1
    found = load_npz(out / "wound.npz")["wound"].astype(bool)
    registered = load_mesh_arrays(out / "registered.ply")[0]
    iou = found_wound_iou(move(true_injured), face.faces, wound, apply_transform(to_scan, registered), found)
    cover_v, cover_f = load_mesh_arrays(out / "filling.ply")
    scores = score_cover(apply_transform(to_scan, cover_v), cover_f, move(face.vertices), move(true_injured),
                         face.faces, wound)
    assert iou["found_iou"] >= 0.4, iou  # measured 0.47 (the same face and dent as the test above)
    # restore measured 0.52 mm (0.12 before the widening), contact 0.14, coverage 1.0
    assert scores["restore_mean_mm"] < 0.7 and scores["contact_mm"] < 0.3 and scores["coverage"] > 0.9, scores
