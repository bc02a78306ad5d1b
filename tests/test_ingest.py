import numpy as np
import pytest
import trimesh

from facecover import FacecoverError
from facecover.cli import main
from facecover.ingest import ingest_scan


@pytest.mark.parametrize("subject", ["subject01", "subject02"])
def test_registration_accuracy_against_truth(space, make_scan, subject):
    path, truth, pose = make_scan(subject=subject, seed=7)
    reg = ingest_scan(path, space)
    err = np.linalg.norm(reg.vertices - truth, axis=1)  # vertex to vertex: sliding counts
    assert err.mean() <= 1.0, err.mean()
    assert np.percentile(err, 95) <= 2.5
    assert reg.report["residuals"]["mean_surface_distance_mm"] < 0.3
    assert reg.vertices.shape == space["vertices"].shape
    # the pose itself, not re-aligned: the report's scan_to_canonical (which carries covers, marks and wound
    # selections between the scan and the template) undoes the scan's known random pose. Measured: 0.59° and
    # 0.57 / 0.84 mm (mean move of the true face carried into the scan and back) for subject01 / subject02; a
    # pose off by 3° and 2 mm gives more than 2.4° and 2 mm
    check_pose(reg.scan_to_canonical @ pose, truth, max_angle_deg=1.2, max_shift_mm=1.3)


def check_pose(M: np.ndarray, points: np.ndarray, max_angle_deg: float, max_shift_mm: float) -> None:
    """M (4, 4), the found pose composed with the true one's inverse, is about the identity: its rotation
    angle and the mean distance it moves `points` (mm) are under the limits."""
    from facecover.meshtools import apply_transform

    angle = np.degrees(np.arccos(np.clip((np.trace(M[:3, :3]) - 1) / 2, -1, 1)))
    shift = np.linalg.norm(apply_transform(M, points) - points, axis=1).mean()
    assert angle < max_angle_deg and shift < max_shift_mm, (angle, shift)


@pytest.mark.parametrize("units, factor", [("m", 1e-3), ("cm", 0.1), ("in", 1 / 25.4), ("mm", 1.0)])
def test_units_are_detected_and_wrong_units_refused(space, make_scan, units, factor):
    from facecover.ingest import plausible_units, scan_units_scale

    path, truth, _ = make_scan(subject="subject05", scale=factor)
    scan = trimesh.load(path, process=False)
    assert plausible_units(np.asarray(scan.vertices))[0] == units
    assert scan_units_scale(np.asarray(scan.vertices), "auto")[1] == units
    if units != "mm":  # "mm" still refuses a scan whose size says otherwise, naming the units that fit
        with pytest.raises(FacecoverError, match=rf"{path.name}.*looks like {units}"):
            ingest_scan(path, space, units="mm")
    if units in ("cm", "in"):
        reg = ingest_scan(path, space, units="auto")
        assert reg.report["units_detected"] == units and reg.report["scale_to_mm"] == pytest.approx(1 / factor)
        assert np.linalg.norm(reg.vertices - truth, axis=1).mean() < 1.0


NON_FACES = {
    "ball": lambda: trimesh.creation.icosphere(subdivisions=5, radius=80.0),
    "box": lambda: trimesh.creation.box(extents=(150.0, 150.0, 150.0)).subdivide().subdivide().subdivide(),
    "torus": lambda: trimesh.creation.torus(major_radius=70.0, minor_radius=25.0, major_sections=96,
                                            minor_sections=48),
    "hand_blob": lambda: _blob(),  # hand-sized: 180 x 90 x 30 mm, lumpy
}


def _blob():
    blob = trimesh.creation.icosphere(subdivisions=5, radius=1.0)
    v = blob.vertices * [90.0, 45.0, 15.0]
    v += 4.0 * np.sin(v[:, [1]] / 9.0) * blob.vertex_normals
    return trimesh.Trimesh(v, blob.faces, process=False)


@pytest.mark.parametrize("name", list(NON_FACES))
def test_non_faces_are_refused_with_the_reason(space, tmp_path, name):
    path = tmp_path / f"{name}.ply"
    NON_FACES[name]().export(path)
    with pytest.raises(FacecoverError, match=rf"{name}\.ply: does not look like a face: .*(no face found|landmarks|"
                                             rf"distance to the scan)"):
        ingest_scan(path, space, units="auto")


@pytest.fixture(scope="module")
def heldout(space):
    from facecover.heldout import heldout_suite

    return {f.name: f for f in heldout_suite(space, seed=3, dense=())}


@pytest.mark.parametrize("name", ["warp1", "parted_lips", "extended", "textured_obj", "quads_obj", "narrow"])
def test_faces_outside_the_shape_space_are_accepted_and_corresponded(space, heldout, tmp_path, name):
    """Faces not drawn from the shape space (other warps, cut lips, a scan reaching to the ears and neck,
    other file formats) register: accepted, on the surface, landmarks and regions on the right anatomy."""
    from facecover.heldout import write_face
    from facecover.ingest import template_landmarks
    from facecover.meshtools import rigid_transform
    from facecover.template import REGION_ID

    face = heldout[name]
    reg = ingest_scan(write_face(face, tmp_path), space)
    to_scan = np.linalg.inv(reg.scan_to_canonical)
    registered = reg.vertices @ to_scan[:3, :3].T + to_scan[:3, 3]
    facial = space["regions"] != REGION_ID["other"]
    R, t = rigid_transform(registered, face.truth, facial.astype(float))
    err = np.linalg.norm(registered @ R.T + t - face.truth, axis=1)
    # the registration's prior is ICT-FaceKit's identity space; these faces are warps of its mean face made
    # another way: 1.80 (warp1) and 1.93 mm (parted lips) measured, the worst of the suite
    assert err[facial].mean() < 2.1, err[facial].mean()
    landmark_err = np.linalg.norm(template_landmarks(space, registered @ R.T + t)
                                  - template_landmarks(space, face.truth), axis=1)
    # measured: median ≤ 1.51 mm (parted lips), worst landmark 4.05 mm (the narrow face)
    assert np.median(landmark_err) < 1.7 and landmark_err.max() < 4.5, (np.median(landmark_err), landmark_err.max())
    assert reg.report["residuals"]["mean_surface_distance_mm"] < 0.25


def test_bad_files_give_clear_errors_and_no_output(space_file, tmp_path, capsys):
    empty = tmp_path / "empty.ply"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.ply"
    corrupt.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 10\n garbage")
    missing = tmp_path / "subject99.ply"
    for path, message in [(empty, "empty"), (corrupt, "cannot read|no triangles"), (missing, "not found")]:
        out = tmp_path / "out" / "reg.ply"
        code = main(["ingest", "--space", str(space_file), "--scan", str(path), "--out", str(out),
                     "--report", str(tmp_path / "out" / "reg.json")])
        err = capsys.readouterr().err
        assert code == 1
        assert path.name in err and any(m in err for m in message.split("|")), err
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_cli_writes_mesh_and_report(space_file, make_scan, tmp_path):
    import json

    path, truth, _ = make_scan(subject="subject03")
    out = tmp_path / "registered" / "subject03.ply"
    report = tmp_path / "registered" / "subject03.json"
    assert main(["ingest", "--space", str(space_file), "--scan", str(path), "--out", str(out),
                 "--report", str(report)]) == 0
    mesh = trimesh.load(out, process=False)
    assert len(mesh.vertices) == 7160
    data = json.loads(report.read_text())
    assert data["residuals"]["mean_surface_distance_mm"] < 0.3
    assert sorted(p.name for p in out.parent.iterdir()) == ["subject03.json", "subject03.ply"]  # no temp files


def test_registration_from_any_orientation(space, make_scan):
    from facecover.cohort import ScanSettings

    for subject in ("subject20", "subject11"):
        path, truth, _ = make_scan(subject=subject, seed=7, settings=ScanSettings(max_rotation_deg=180))
        reg = ingest_scan(path, space)
        assert np.linalg.norm(reg.vertices - truth, axis=1).mean() <= 1.0


def test_cli_settings_are_checked(space_file, make_scan, tmp_path, capsys):
    path, _, _ = make_scan(subject="subject04")
    out = tmp_path / "registered" / "subject04.ply"
    for settings, message in [('{"fit_iteration": 3}', "unknown setting(s) fit_iteration"),
                              ('{"fit_iterations": ', "not valid JSON")]:
        code = main(["ingest", "--space", str(space_file), "--scan", str(path), "--settings", settings,
                     "--out", str(out), "--report", str(tmp_path / "registered" / "subject04.json")])
        assert code == 1 and message in capsys.readouterr().err
        assert not out.exists()


# every held-out case registered (units="auto") by the test below: (mean facial correspondence error after the
# rigid re-alignment mm, the same without it mm, the re-alignment's rotation °, its mean move of the facial
# points mm), measured at 950c2d9 with 1 BLAS thread on the 2-core test machine; a second run gave the same
# figures. A pose off by 3° and 2 mm (bench/mutations.py ingest_pose_off) measured: rotation 2.83-4.41°, move
# 3.04-4.63 mm, uncorrected error 3.35-4.93 mm, over every limit on every case. That run's correspondence
# errors were up to 0.11 mm from the measured ones (parted lips 1.90, dense 50k 1.76 mm), although the mutant
# only moves the reported pose: the registration's figures move that much with the process it runs in.
HELDOUT_MEASURED = {
    "warp1": (1.75, 2.26, 1.49, 1.63),
    "warp2": (1.11, 1.40, 0.88, 1.00),
    "asymmetric": (1.00, 1.11, 0.56, 0.64),
    "narrow": (1.49, 1.57, 0.41, 0.67),
    "wide": (1.63, 1.70, 0.40, 0.69),
    "open_eyes": (1.80, 2.27, 1.42, 1.60),
    "parted_lips": (1.79, 2.20, 1.43, 1.55),
    "extended": (1.30, 1.64, 1.01, 1.16),
    "textured_ply": (0.98, 1.07, 0.53, 0.60),
    "textured_obj": (0.96, 1.04, 0.49, 0.60),
    "quads_obj": (1.52, 1.59, 0.39, 0.65),
    "dense_50k": (1.65, 1.73, 0.52, 0.71),
    "dense_300k": (1.77, 1.86, 0.49, 0.85),
    "units_m": (0.97, 1.28, 0.84, 0.96),
    "units_cm": (0.97, 1.28, 0.85, 0.96),
    "units_in": (0.97, 1.24, 0.78, 0.89),
}
# allowed over the measured figure: 0.3 mm, 0.5 mm, 0.6°, 0.5 mm (about three times the 0.11 mm spread seen in
# the correspondence; the largest limits, warp1's 2.09° and 2.13 mm, stay under the broken pose's least
# rotation 2.83° and move 3.04 mm)
HELDOUT_MARGIN = (0.3, 0.5, 0.6, 0.5)


@pytest.mark.slow  # registers the 16 held-out scans, two of them dense (50 k and 300 k vertices): 1.5 minutes
def test_every_heldout_case_registers_in_its_true_pose(space, tmp_path):
    """Every case of the held-out suite (`heldout_suite`: warps, asymmetry, narrow and wide faces, open eyes,
    parted lips, a scan reaching to the ears and neck, textured PLY/OBJ, quads, dense scans, metres /
    centimetres / inches) registers: accepted, in the right units, on the true correspondence once rigidly
    re-aligned, and in its true pose without re-alignment (the report's scan_to_canonical carries the template
    back onto the true face in the scan's frame), each within its measured figures (HELDOUT_MEASURED)."""
    from facecover.heldout import heldout_suite, write_face
    from facecover.meshtools import apply_transform, rigid_transform
    from facecover.template import REGION_ID

    facial = space["regions"] != REGION_ID["other"]
    rows = {}
    for face in heldout_suite(space, seed=3):
        reg = ingest_scan(write_face(face, tmp_path), space, units="auto")
        registered = apply_transform(np.linalg.inv(reg.scan_to_canonical), reg.vertices)
        R, t = rigid_transform(registered, face.truth, facial.astype(float))
        M = np.eye(4)
        M[:3, :3], M[:3, 3] = R, t
        angle = np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1)))
        shift = np.linalg.norm(apply_transform(M, registered[facial]) - registered[facial], axis=1).mean()
        aligned = np.linalg.norm(apply_transform(M, registered) - face.truth, axis=1)[facial].mean()
        raw = np.linalg.norm(registered - face.truth, axis=1)[facial].mean()
        rows[face.name] = (reg.report["units_detected"], face.units, round(aligned, 2), round(raw, 2),
                           round(angle, 2), round(shift, 2))
    print("MEASURE", rows)
    assert set(rows) == set(HELDOUT_MEASURED), sorted(rows)
    assert all(r[0] == r[1] for r in rows.values()), rows
    over = {name: (r[2:], HELDOUT_MEASURED[name]) for name, r in rows.items()
            if any(got > measured + margin
                   for got, measured, margin in zip(r[2:], HELDOUT_MEASURED[name], HELDOUT_MARGIN))}
    assert not over, f"(aligned mm, raw mm, angle °, shift mm) over the measured figures + {HELDOUT_MARGIN}: {over}"


@pytest.mark.parametrize("kind", ["smile", "mouth_open"])
def test_an_expression_registers_with_the_lips_nearer_their_place(space, uv, tmp_path, kind):
    """A person smiling or with the mouth a little open (ICT's blendshapes at the held-out sets' weights):
    with `expression_sd` 0.5 (off by default) a second shape fit may also move the template by the space's
    expressions and is taken, as it fits the scan clearly better. Measured mean vertex error over the mouth
    region (sliding counts): 2.18 / 3.15 mm (smile / mouth open) against 3.88 / 4.97 mm with identity modes
    only (the lips slide, and the fit then calls the mouth of such faces a wound)."""
    import dataclasses

    from facecover.cohort import ScanSettings, person_rng, person_vertices, synthetic_scan
    from facecover.files import save_mesh
    from facecover.heldout import EXPRESSIONS
    from facecover.ict import expression_weights
    from facecover.ingest import RegistrationSettings
    from facecover.template import REGION_ID

    weights = expression_weights(space, **EXPRESSIONS[kind])
    rng = person_rng(11, "cohort", f"expressive-{kind}")
    truth = person_vertices(space, rng, with_detail=True) + np.tensordot(weights, space["expression_basis"], axes=1)
    v, f, _ = synthetic_scan(truth, space["faces"], uv, rng, ScanSettings())
    path = tmp_path / f"{kind}.ply"
    save_mesh(path, v, f)
    mouth = space["regions"] == REGION_ID["mouth"]
    errors, used = {}, {}
    for sd in (0.0, 0.5):
        reg = ingest_scan(path, space, settings=dataclasses.replace(RegistrationSettings(), expression_sd=sd))
        errors[sd], used[sd] = np.linalg.norm(reg.vertices - truth, axis=1)[mouth].mean(), reg.report["expressions"]
    assert used == {0.0: False, 0.5: True}
    assert errors[0.5] < 0.7 * errors[0.0], errors


@pytest.mark.parametrize("subject", ["subject01", "subject02"])
def test_a_neutral_face_keeps_the_identity_fit(space, make_scan, subject):
    """With the expression fit on, a neutral face (the cohort's) is registered as without it: the expressions
    fit it only a few per cent closer (measured 5-6 %), below `expression_gain`. (Not every neutral face: a
    coarser scan of another cohort subject took it and slid to 1.19 mm, so it is off by default.)"""
    import dataclasses

    from facecover.ingest import RegistrationSettings

    path, truth, _ = make_scan(subject=subject, seed=7)
    on = ingest_scan(path, space, settings=dataclasses.replace(RegistrationSettings(), expression_sd=0.5))
    off = ingest_scan(path, space)
    assert RegistrationSettings().expression_sd == 0.0
    assert not on.report["expressions"]
    np.testing.assert_allclose(on.vertices, off.vertices, atol=1e-9)
