import numpy as np

from facecover.template import REGION_ID, REGIONS, load_template_mm


def test_template_in_millimetres():
    v, f = load_template_mm()
    assert v.shape == (7160, 3) and f.shape == (14050, 3)
    assert np.isclose(np.ptp(v[:, 0]), 140.0)
    assert 160 < np.ptp(v[:, 1]) < 180  # forehead to chin
    assert np.allclose(v.mean(axis=0), 0, atol=1e-9)


def test_landmarks_are_anatomical(space):
    v = space["vertices"]
    lm = {str(n): v[i] for n, i in zip(space["landmark_names"], space["landmark_vertices"])}
    assert lm["nose_tip"][2] > v[:, 2].max() - 5  # most anterior point, within 5 mm
    ipd = np.linalg.norm(lm["eye_left"] - lm["eye_right"])
    assert abs(ipd - 63.6) < 1.0  # the ICT-FaceKit neutral face: pupils 63.6 mm apart (adult mean ≈ 63 mm)
    assert lm["eye_left"][0] > 0 > lm["eye_right"][0]  # subject's left is +x
    # ICT's neutral face: 48.4-49.8 mm as found on its renders (norm ≈ 50 mm)
    assert 47.5 < np.linalg.norm(lm["mouth_left"] - lm["mouth_right"]) < 51.0
    assert lm["chin"][1] < lm["mouth_left"][1] < lm["nose_tip"][1] < lm["eye_left"][1] < lm["forehead"][1]


def test_regions_cover_the_face_sensibly(space):
    v, labels, lm = space["vertices"], space["regions"], space["landmark_vertices"]
    names = list(space["landmark_names"])
    counts = np.bincount(labels, minlength=len(REGIONS))
    assert (counts[1:] > 100).all(), dict(zip(REGIONS, counts))
    assert labels[lm[names.index("nose_tip")]] == REGION_ID["nose"]
    assert labels[lm[names.index("eye_left")]] == REGION_ID["eyes"]
    assert labels[lm[names.index("mouth_left")]] == REGION_ID["mouth"]
    assert v[labels == REGION_ID["forehead"], 1].min() > v[labels == REGION_ID["eyes"], 1].mean()
    assert v[labels == REGION_ID["chin"], 1].max() < v[labels == REGION_ID["mouth"], 1].mean()
    assert (v[labels == REGION_ID["cheek_left"], 0] > 0).all() and (v[labels == REGION_ID["cheek_right"], 0] < 0).all()
