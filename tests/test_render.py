import numpy as np

from facecover.cohort import person_rng, person_vertices
from facecover.render import render_views, view_setups
from facecover.template import landmark_positions


def test_landmarks_project_inside_the_rendered_face(space):
    setups = view_setups(np.random.default_rng(0), 4)
    views = render_views(space["vertices"], space["faces"], landmark_positions(space, space["vertices"]), setups, 128, 230.0)
    for view in views:
        img, px = view["image"], view["landmarks_px"]
        assert img.shape == (128, 128) and img.dtype == np.uint8
        ij = np.round(px).astype(int)
        assert ((ij >= 0) & (ij < 128)).all()
        assert (img[ij[:, 1], ij[:, 0]] > 0).all()  # on the face, not the background
        # image order: eyes above nose above mouth, left/right as ArcFace expects
        (le, re, nose, lm, rm) = px
        assert le[0] < re[0] and lm[0] < rm[0]
        assert max(le[1], re[1]) < nose[1] < min(lm[1], rm[1])


def test_views_are_deterministic_and_differ(space):
    pts = landmark_positions(space, space["vertices"])
    a = render_views(space["vertices"], space["faces"], pts, view_setups(person_rng(1, "render", "x"), 3), 96, 230.0)
    b = render_views(space["vertices"], space["faces"], pts, view_setups(person_rng(1, "render", "x"), 3), 96, 230.0)
    assert all(np.array_equal(x["image"], y["image"]) for x, y in zip(a, b))
    assert not np.array_equal(a[0]["image"], a[1]["image"])
    assert a[0]["pose_deg"] == {"yaw": 0.0, "pitch": 0.0, "roll": 0.0}


def _projection_by_geometry(points, pose_deg, size_px, field_mm, distance_mm=600.0):
    """Pixel positions (n, 2) of points (n, 3) mm, worked out here from the view's geometry alone (camera on
    a sphere of `distance_mm` around the origin, turned by yaw/pitch/roll; image x right, y down) — not
    with the renderer's camera matrices."""
    y, p, r = np.radians([pose_deg["yaw"], pose_deg["pitch"], pose_deg["roll"]])
    c, s = np.cos, np.sin
    turn = (np.array([[c(r), -s(r), 0], [s(r), c(r), 0], [0, 0, 1]])
            @ np.array([[1, 0, 0], [0, c(p), -s(p)], [0, s(p), c(p)]])
            @ np.array([[c(y), 0, s(y)], [0, 1, 0], [-s(y), 0, c(y)]]))
    right, up, back = turn[:, 0], turn[:, 1], turn[:, 2]
    d = points - distance_mm * back
    depth = -(d @ back)
    focal = size_px * distance_mm / field_mm
    return np.column_stack([size_px / 2 + focal * (d @ right) / depth, size_px / 2 - focal * (d @ up) / depth])


def test_render_json_landmarks_are_the_projection_of_the_3d_landmarks(space, tmp_path):
    """The 5 ArcFace landmarks written next to each render sit where the 3D landmarks project (0.5 px),
    and the eye landmarks at the projected centres of the template's eye regions (1 px) — a 2 px shift
    or a 15 % scale error fails."""
    import json

    from facecover.cli import main
    from facecover.files import save_mesh
    from facecover.template import REGION_ID

    person = person_vertices(space, person_rng(4, "cohort", "subject01"), with_detail=True)
    save_mesh(tmp_path / "scars" / "00.ply", person, space["faces"])
    size, field = 128, 230.0
    assert main(["render", "--space", str(_space_file(space, tmp_path)), "--scars-dir", str(tmp_path / "scars"),
                 "--subject", "subject01", "--variants", "00", "--seed", "2",
                 "--settings", json.dumps({"views": 4, "size": size, "field_mm": field}),
                 "--out-dir", str(tmp_path / "renders")]) == 0
    truth_3d = landmark_positions(space, person)
    eyes = space["regions"] == REGION_ID["eyes"]
    eye_centres = np.stack([person[eyes & (person[:, 0] < 0)].mean(0), person[eyes & (person[:, 0] > 0)].mean(0)])
    for k in range(4):
        record = json.loads((tmp_path / "renders" / f"00_{k}.json").read_text())
        px = np.array(record["arcface_landmarks_px"])
        expected = _projection_by_geometry(truth_3d, record["pose_deg"], size, field)
        assert np.abs(px - expected).max() <= 0.5, (k, px - expected)
        # the eye regions' centroids stand for the pupils: 1.40 px apart at most on ICT's face (128 px image)
        assert np.linalg.norm(px[:2] - _projection_by_geometry(eye_centres, record["pose_deg"], size, field),
                              axis=1).max() <= 1.6


def _space_file(space, tmp_path):
    from facecover.files import save_npz

    save_npz(tmp_path / "face_space.npz", **space)
    return tmp_path / "face_space.npz"
