"""A wound marked on the scan in the browser (wound.json) -> mask over the registered vertices (mm)."""

import json

import numpy as np
import pytest

from facecover import FacecoverError
from facecover.marked_wound import MarkedWound, MarkError, snapped_edge, wound_from_mark_file, wound_from_marks

DEPTH_MM, RADIUS_MM = 3.0, 10.0


def pose(angle=0.4, shift=(20.0, -5.0, 300.0)):
    """A scan_to_canonical 4x4: a rotation about y and a shift."""
    c, s = np.cos(angle), np.sin(angle)
    T = np.eye(4)
    T[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    T[:3, 3] = shift
    return T


@pytest.fixture(scope="module")
def dented():
    """A 100 mm square of skin on a 1 mm grid (the registered vertices, canonical mm) with a round dent of
    3 mm depth and 10 mm radius (raised cosine) at the origin; the true wound is where it is deeper than
    0.1 mm; the residual is the dent's depth."""
    x, y = np.meshgrid(np.arange(-50.0, 50.5, 1.0), np.arange(-50.0, 50.5, 1.0))
    r = np.hypot(x, y).ravel()
    depth = np.where(r < RADIUS_MM, DEPTH_MM * 0.5 * (1 + np.cos(np.pi * r / RADIUS_MM)), 0.0)
    vertices = np.c_[x.ravel(), y.ravel(), -depth]
    return vertices, depth > 0.1, depth


def to_scan(points, T):
    """Canonical points -> the scan's frame (the inverse of scan_to_canonical)."""
    return (points - T[:3, 3]) @ T[:3, :3]


def disc(vertices, centre, radius):
    return np.hypot(vertices[:, 0] - centre[0], vertices[:, 1] - centre[1]) <= radius


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_a_mark_around_a_region_selects_it(dented):
    vertices, truth, _ = dented
    T = pose()
    marked_points = to_scan(vertices[truth], T)  # the scan vertices under the brush, in the scan's frame
    wound = wound_from_marks(marked_points, 2.0, vertices, T, 1.0)
    assert iou(wound, truth) > 0.97


def test_scale_to_mm_is_applied(dented):
    vertices, truth, _ = dented
    T = pose()
    wound = wound_from_marks(to_scan(vertices[truth], T) / 10.0, 2.0, vertices, T, 10.0)  # a scan in cm
    assert iou(wound, truth) > 0.97


@pytest.mark.parametrize("offset_mm,radius_mm", [((2.0, 0.0), 9.0), ((0.0, 0.0), 11.0), ((0.0, 0.0), 6.5)])
def test_snapping_moves_a_rough_edge_onto_the_true_edge(dented, offset_mm, radius_mm):
    """A brush off by up to 2.3 mm (the true edge is at 8.8 mm): without snapping the mark is what was
    painted; with the residual (and the same threshold both ways) the edge lands on the true edge (IoU ≥ 0.95)."""
    vertices, truth, depth = dented
    T = pose()
    rough = disc(vertices, offset_mm, radius_mm)
    painted = wound_from_marks(to_scan(vertices[rough], T), 2.0, vertices, T)
    snapped = wound_from_marks(to_scan(vertices[rough], T), 2.0, vertices, T, residual_mm=depth, keep_fraction=1.0)
    assert iou(painted, truth) < 0.85
    assert iou(snapped, truth) >= 0.95


def test_snapping_moves_the_edge_at_most_snap_mm(dented):
    """A mark 6 mm too wide shrinks by 3 mm only; one 6 mm too small grows by 3 mm only."""
    vertices, truth, depth = dented
    T = pose()
    r_true = np.hypot(*vertices[truth][:, :2].T).max()
    for radius, move in ((r_true + 6, -3.0), (r_true - 6, 3.0)):
        rough = disc(vertices, (0, 0), radius)
        expected = np.hypot(*vertices[rough][:, :2].T).max() + move
        snapped = wound_from_marks(to_scan(vertices[rough], T), 2.0, vertices, T, residual_mm=depth, snap_mm=3.0,
                                   keep_fraction=1.0)
        edge = np.hypot(*vertices[snapped][:, :2].T).max()
        assert abs(edge - expected) <= 1.0, (radius, edge, expected)


def test_snapped_edge_keeps_the_mark_without_a_band(dented):
    vertices, truth, depth = dented
    assert np.array_equal(snapped_edge(truth, depth, vertices, snap_mm=0.0), truth)
    assert not snapped_edge(np.zeros(len(truth), bool), depth, vertices).any()


def test_bad_marks_say_why(dented):
    vertices, truth, _ = dented
    T = pose()
    points = to_scan(vertices[truth], T)
    with pytest.raises(MarkError, match="empty"):
        wound_from_marks(np.zeros((0, 3)), 2.0, vertices, T)
    with pytest.raises(MarkError, match="looks like metres"):
        wound_from_marks(vertices[truth] / 1000.0, 2.0, vertices, np.eye(4))
    with pytest.raises(MarkError, match="another patient"):
        wound_from_marks(to_scan(vertices[truth] + [0.0, 0.0, 40.0], T), 2.0, vertices, T)
    with pytest.raises(MarkError, match="brush_radius_mm"):
        wound_from_marks(points, -1.0, vertices, T)


def write_mark(folder, T, points, radius=2.0, registration_scale=1.0, **extra):
    mark = folder / "wound.json"
    mark.write_text(json.dumps({"units": "mm", "frame": "scan", "brush_radius_mm": radius,
                                "points_mm": np.asarray(points).tolist(), **extra}))
    report = folder / "registered.json"
    report.write_text(json.dumps({"scan_to_canonical": T.tolist(), "scale_to_mm": registration_scale}))
    return mark, report


def test_the_json_branch_of_infer(tmp_path, dented):
    """`facecover infer --wound wound.json` takes the mark, as a hand mark the fit may snap by 3 mm."""
    from facecover.commands.infer import _given_wound

    vertices, truth, _ = dented
    T = pose()
    rough = disc(vertices, (1.5, -1.0), 11.0)
    mark, report = write_mark(tmp_path, T, to_scan(vertices[rough], T))
    wound = _given_wound(str(mark), str(report), vertices)
    assert isinstance(wound, MarkedWound) and wound.snap_mm == 3.0
    assert wound.shape == (len(vertices),) and wound.dtype == bool
    assert iou(wound, rough) >= 0.97


@pytest.mark.parametrize("content,message", [
    ("{not json", "malformed JSON"),
    ('{"units": "mm"}', "not a wound mark"),
    ('{"units": "mm", "brush_radius_mm": 2, "points_mm": []}', "the mark is empty"),
    ('{"units": "mm", "brush_radius_mm": 2, "points_mm": [["a", 1, 2]]}', "list of \\[x, y, z\\]"),
])
def test_malformed_mark_files_name_the_file(tmp_path, dented, content, message):
    from facecover.commands.infer import _given_wound

    vertices, _, _ = dented
    mark, report = write_mark(tmp_path, pose(), vertices[:3])
    mark.write_text(content)
    with pytest.raises(FacecoverError, match=message) as info:
        _given_wound(str(mark), str(report), vertices)
    assert str(mark) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("change,message", [
    (lambda p: p / 1000.0, "looks like metres"),
    (lambda p: p + [0.0, 0.0, 60.0], "another patient"),
])
def test_marks_in_metres_or_from_another_patient_name_the_file(tmp_path, dented, change, message):
    vertices, truth, _ = dented
    T = np.eye(4)
    mark, report = write_mark(tmp_path, T, change(vertices[truth]))
    with pytest.raises(FacecoverError, match=message) as info:
        wound_from_mark_file(mark, report, vertices)
    assert str(info.value).startswith(str(mark))


def test_a_mark_on_a_differently_scaled_scan_is_refused(tmp_path, dented):
    vertices, truth, _ = dented
    mark, report = write_mark(tmp_path, np.eye(4), vertices[truth], scale_to_mm=10.0)
    with pytest.raises(FacecoverError, match="another scan"):
        wound_from_mark_file(mark, report, vertices)


def test_rough_marks_around_dents_give_the_wound_and_the_same_healthy_face(tmp_path, space, model):
    """Round dents (2-4 mm deep) on a face with real anatomy, each marked roughly on its denser, posed scan
    — the true wound grown or shrunk by 1.5-2 mm: the wound the fit takes from the mark (edge snapped by
    at most 3 mm) has IoU ≥ 0.85 with the true wound on average (never less than the rough mark's, less two
    vertices' worth), and for marks drawn around the dent the healthy face fitted with it is as close to the
    truth inside the wound as with the true mask (± 0.1 mm)."""
    from facecover.cohort import person_rng, person_vertices
    from facecover.learn.infer import fit_healthy_face, grown, mesh_operators
    from facecover.meshtools import subdivide
    from facecover.scars import ScarSettings, one_scar, prepare_face

    decoder, noise = model
    healthy = person_vertices(space, person_rng(4, "cohort", "subject98"), with_detail=True)
    prepared = prepare_face(healthy, space["faces"], space["regions"])
    settings = ScarSettings(depth_mm=(2.0, 4.0))
    T = pose(0.5, (-40.0, 10.0, 520.0))
    ious = []
    for region, seed, change_mm in [("cheek_right", 3, 2.0), ("forehead", 5, -2.0), ("nose", 8, 2.0),
                                    ("chin", 13, -1.5), ("cheek_left", 21, 2.0), ("forehead", 22, 2.0),
                                    ("nose", 23, -2.0)]:
        h, _ = one_scar(prepared, "round", region, np.random.default_rng(seed), settings)
        injured = healthy - np.abs(h)[:, None] * prepared.normals
        truth = np.abs(h) > settings.mask_threshold_mm
        graph = mesh_operators(injured, space["faces"])["graph"]
        rough = grown(truth, graph, change_mm) if change_mm > 0 else ~grown(~truth, graph, -change_mm)
        scan_v, _, carried = subdivide(injured, space["faces"], rough.astype(float))  # the scan: ~1.2 mm spacing
        folder = tmp_path / f"{region}{seed}"
        folder.mkdir()
        mark, report = write_mark(folder, T, to_scan(scan_v[carried[:, 0] > 0.5], T), radius=3.0)
        marked = wound_from_mark_file(mark, report, injured)
        fits = [fit_healthy_face(decoder, injured, space["faces"], None, noise, wound=w) for w in (marked, truth)]
        ious.append(iou(fits[0]["wound"], truth))
        # never worse than the rough mark by more than a couple of vertices: the smallest dent (13 vertices on
        # the nose, marked 2 mm inside) measured 0.85 rough, 0.69 snapped (2 vertices)
        assert ious[-1] >= iou(rough, truth) - 2.5 / truth.sum(), (region, seed, iou(rough, truth), ious[-1])
        errors = [np.linalg.norm(fit["healthy"] - healthy, axis=1)[truth].mean() for fit in fits]
        if change_mm > 0:  # drawn around the dent (a mark inside it leaves its rim to the skin: not restored)
            assert abs(errors[0] - errors[1]) <= 0.1, (region, seed, errors)
        assert np.array_equal(fits[1]["wound"], truth)  # a plain mask is used as is
    assert np.mean(ious) >= 0.85, np.round(ious, 2)
