import numpy as np

from facecover.cohort import person_rng
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
