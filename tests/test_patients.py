"""Patients end to end: a wound on the true surface scanned raw, registered, found, covered and scored in the
scan's frame against the true surfaces; implausible wounds stop (mm)."""

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


@pytest.mark.slow  # registers 8 raw scans: 1-5 minutes
def test_known_wound_on_an_ict_face_is_found_end_to_end_and_an_uninjured_scan_gets_no_cover(space, model, tmp_path):
    """From raw scans of an ICT-FaceKit person (a new one, made like the cohort's), the fit's noise measured on
    six registered healthy scans as the workflow does: the dent is found and covered (restore and contact under half a millimetre, most of the wound under the
    cover); the same face uninjured gives a false wound under 50 mm² and no implausible wound."""
    decoder, _ = model
    settings = product_fit_settings()
    noise = fit_noise(decoder, space["faces"], registered_healthy_scans(space, tmp_path), settings,
                      fit_nuisance(space, settings))
    face = patient_faces(space, "cohort", 1, seed=5)[0]
    h = dent(face, wound_site(face, "cheek_right"), 13.0, -3.0)
    injured = patient_case(space, decoder, noise, settings, face, h, np.random.default_rng(1), tmp_path)
    # measured 0.63 (found 573 mm² for a true 400: this test's decoder, 60 components from 120 people, follows
    # the face less closely than the workflow's from 1600); a fit that misses the dent or calls half the cheek
    # wound falls well below
    assert injured["found_iou"] >= 0.55, injured
    assert injured["restore_mean_mm"] < 0.5 and injured["coverage"] > 0.9, injured
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
