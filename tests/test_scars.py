import zlib

import numpy as np
import pytest

from facecover.cohort import person_vertices, person_rng
from facecover.scars import KINDS, SCAR_REGIONS, ScarSettings, one_scar, prepare_face, simulate_scars
from facecover.template import REGION_ID


@pytest.fixture(scope="module")
def face(space):
    healthy = person_vertices(space, person_rng(1, "cohort", "subject01"), with_detail=True)
    return prepare_face(healthy, space["faces"], space["regions"])


def _graph_distance_to_region(face, region):
    from facecover.scars import geodesic_distance

    return geodesic_distance(face.graph, np.flatnonzero(face.regions == REGION_ID[region]), 1e9)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("region", SCAR_REGIONS)
def test_scar_stays_in_its_region_and_depth_range(face, kind, region):
    settings = ScarSettings()
    rng = np.random.default_rng(zlib.crc32(f"{kind}/{region}".encode()))  # stable across processes
    h, (k, r, centre, size, depth) = one_scar(face, kind, region, rng, settings)
    mask = np.abs(h) > settings.mask_threshold_mm
    assert mask.sum() >= 3  # non-empty
    assert face.regions[centre] == REGION_ID[region]
    outside = _graph_distance_to_region(face, region)[mask]
    assert outside.max() <= settings.region_fade_mm + 1e-9  # inside the region, up to the fade band
    lo, hi = settings.severe_depth_mm if kind == "severe" else settings.depth_mm  # the configured range
    peak = np.abs(h).max()  # the displacement itself, not the sampled parameter
    assert lo - 1e-9 <= peak <= hi + 1e-9
    if kind == "round":
        assert np.isclose(abs(h[centre]), peak, rtol=0.05)  # deepest at the scar's centre


def test_falloff_is_smooth_along_the_normal(face):
    h, (_, _, centre, radius, depth) = one_scar(face, "round", "forehead", np.random.default_rng(3))
    assert np.isclose(h[centre], depth)
    # raised-cosine profile times the raised-cosine region fade: never steeper than
    # (pi/2) * depth * (1/radius + 1/fade), i.e. no steps anywhere
    g = face.graph.tocoo()
    slope = np.abs(h[g.row] - h[g.col]) / g.data
    fade = ScarSettings().region_fade_mm
    assert slope.max() <= 1.01 * np.pi / 2 * abs(depth) * (1 / radius + 1 / fade)
    assert (np.abs(h) > 0).sum() > 10


def test_variants_have_protrusions_and_depressions_and_are_deterministic(face, space):
    import trimesh

    mesh_normals = trimesh.Trimesh(face.vertices, space["faces"], process=False).vertex_normals
    signs = set()
    for variant in range(12):
        a = simulate_scars(face, person_rng(5, "scars", f"s/{variant}"))
        b = simulate_scars(face, person_rng(5, "scars", f"s/{variant}"))
        assert np.array_equal(a["displacement"], b["displacement"])
        assert a["mask"].any()
        signs.update(np.sign(a["scar_depth_mm"]).tolist())
        step = a["vertices"] - face.vertices
        assert np.allclose(np.linalg.norm(step, axis=1), np.abs(a["displacement"]))
        # along the surface normal (computed here by trimesh, not by the scar code), outwards for a
        # protrusion and inwards for a depression
        moved = np.abs(a["displacement"]) > 0.1
        direction = step[moved] / a["displacement"][moved, None]
        cos = np.einsum("ij,ij->i", direction, mesh_normals[moved])  # (the scar code smooths its normals
        # people with real anatomy (folds, lips): median 0.984 measured; a displacement along another axis
        # (e.g. z) gives about 0.7
        assert np.median(cos) > 0.97 and np.percentile(cos, 5) > np.cos(np.radians(35))  # over 4 mm)
    assert signs == {-1.0, 1.0}
    c = simulate_scars(face, person_rng(6, "scars", "s/0"))
    assert not np.array_equal(c["displacement"], simulate_scars(face, person_rng(5, "scars", "s/0"))["displacement"])
