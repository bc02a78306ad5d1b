"""Partial scans (issue 27): a scan of part of a face registers where it is, the rest of the template unobserved;
the fit ignores the unobserved part and never calls it wound; a cover is made only when the wound and the band
it rests on were scanned (mm)."""

import json

import numpy as np
import pytest

from facecover import FacecoverError
from facecover.cohort import ScanSettings, person_rng, person_vertices, synthetic_scan
from facecover.files import save_mesh
from facecover.learn.infer import FitSettings, fit_healthy_face, mesh_operators
from facecover.meshtools import apply_transform, edge_graph, vertex_normals
from facecover.partial import cut_scan, observed_from_report, wound_inside_observed
from facecover.scars import round_scar
from facecover.template import landmark_positions

RESTORE_GAP_MM = 0.1  # the issue: a cut scan's cover restores within 0.1 mm of the whole scan's


def nose_tip(space, vertices):
    return landmark_positions(space, vertices, ["nose_tip"])[0]


def within(space, vertices, centre, radius_mm):
    """Template vertices (N,) bool within `radius_mm` of `centre` — a partial scan's observed part."""
    return np.linalg.norm(vertices - centre, axis=1) < radius_mm


def test_observed_mask_from_the_ingest_report_and_old_reports(tmp_path):
    """A report naming unobserved vertices gives the mask; one without them (a whole scan, or a report written
    before partial scans) means everything observed; ids beyond the mesh are an error naming the report."""
    assert observed_from_report({"residuals": {}}, 10) is None
    assert observed_from_report(tmp_path / "missing.json", 10) is None
    path = tmp_path / "reg.json"
    path.write_text(json.dumps({"coverage": {"partial": True, "unobserved_vertices": [1, 4]}}))
    mask = observed_from_report(path, 6)
    assert mask.tolist() == [True, False, True, True, False, True]
    with pytest.raises(FacecoverError, match="unobserved vertex ids up to 4 for a registered mesh of 3"):
        observed_from_report(path, 3)


def test_a_wound_reaching_the_scans_edge_is_refused_with_the_skin_seen(space):
    """A wound well inside the observed part passes, with its whole 5 mm band seen; the same wound with the
    scan cut 8 mm from its centre is refused, naming the healthy skin seen around it and what is needed."""
    v = space["vertices"]
    ops = mesh_operators(v, space["faces"])
    centre = int(np.argmin(np.linalg.norm(v - (nose_tip(space, v) + [35.0, 5.0, -15.0]), axis=1)))  # a cheek
    wound = np.linalg.norm(v - v[centre], axis=1) < 10.0
    observed = within(space, v, v[centre], 40.0)
    ok = wound_inside_observed(wound, observed, ops, 5.0, "patient01")
    assert ok["band_seen_mm2"] == pytest.approx(ok["band_area_mm2"]) and 150 < ok["band_area_mm2"] < 600, ok
    cut = observed & (v[:, 0] < v[centre, 0] + 8.0)  # the scan stops 8 mm beyond the wound's centre
    with pytest.raises(FacecoverError, match=r"patient01: the wound found \(\d+ mm²\) reaches the edge of the "
                                             r"scanned part: \d+ mm² of healthy skin seen within 5 mm around it, "
                                             r"need \d+ mm²"):
        wound_inside_observed(wound, cut, ops, 5.0, "patient01")
    assert wound_inside_observed(wound, None, ops, 5.0, "patient01") == {}  # a whole scan: nothing to check


def test_the_fit_ignores_the_unobserved_part_and_finds_no_wound_there(space, model):
    """A face with a 3 mm dent on the cheek, observed within 70 mm of its nose tip; beyond that the registered
    mesh is garbage (the template's guess: here 6 mm bumps and a second, deeper dent). With the observed mask
    the fit finds the cheek's dent, no wound beyond the scan, and the healthy face over the observed part is
    the one fitted to the clean face; without the mask the garbage is called wound."""
    decoder, noise = model
    v = person_vertices(space, person_rng(4, "pool", "p3"), with_detail=True)
    faces = space["faces"]
    graph, normals = edge_graph(v, faces), vertex_normals(v, faces)
    observed = within(space, v, nose_tip(space, v), 70.0)
    cheek = int(np.argmin(np.linalg.norm(v - (nose_tip(space, v) + [35.0, 5.0, -15.0]), axis=1)))
    assert observed[cheek]
    h = round_scar(graph, cheek, 12.0, -3.0)
    injured = v + h[:, None] * normals
    far = np.flatnonzero(~observed)
    rng = np.random.default_rng(0)
    garbage = injured.copy()
    garbage[far] += (6.0 * np.sin(v[far, 1:2] / 7.0) * rng.uniform(0.5, 1.0)) * normals[far]
    garbage += round_scar(graph, int(far[np.argmax(v[far, 1])]), 15.0, -5.0)[:, None] * normals  # the forehead's top
    settings = FitSettings()
    clean = fit_healthy_face(decoder, injured, faces, None, noise, settings, observed=observed)
    partial = fit_healthy_face(decoder, garbage, faces, None, noise, settings, observed=observed)
    blind = fit_healthy_face(decoder, garbage, faces, None, noise, settings)
    true_wound = np.abs(h) > 0.1
    diff = np.linalg.norm(partial["healthy"] - clean["healthy"], axis=1)[observed]
    found = {k: (int((r["wound"] & true_wound).sum()), int((r["wound"] & ~observed).sum()))
             for k, r in (("clean", clean), ("partial", partial), ("blind", blind))}
    print("MEASURE", found, diff.mean(), true_wound.sum())
    assert not (partial["wound"] & ~observed).any()
    assert found["partial"][0] >= max(0.8 * found["clean"][0], 20), found
    assert found["blind"][1] > 50, found  # the check above can fail: without the mask it does
    assert diff.mean() < 0.01, diff.mean()  # measured 0.000: the unobserved part has no say


def test_a_partial_scan_is_placed_on_the_template_without_landmarks(space, uv):
    """`partial_scan_poses` (the rigid start when MediaPipe sees no face): a raw scan of a cohort face in a
    random pose, cut to 55 mm around the nose tip or a cheek: one of the starts the registration shape-fits
    puts it back near its true pose (a cheek is less distinct than a nose: about 10 mm and 10° off)."""
    from facecover.ingest import PARTIAL_STARTS, partial_scan_poses, scan_vertex_normals

    truth = person_vertices(space, person_rng(2, "cohort", "partial"), with_detail=True)
    rng = np.random.default_rng(3)
    scan_v, scan_f, pose = synthetic_scan(truth, space["faces"], uv, rng, ScanSettings())
    tip = nose_tip(space, truth)
    for centre in (tip, tip + [35.0, 5.0, -15.0]):
        v, f = cut_scan(scan_v, scan_f, apply_transform(pose, centre[None])[0], 55.0)
        candidates = partial_scan_poses(space, v, scan_vertex_normals(v, f), np.random.default_rng(0))
        errors = []
        for cost, found in candidates[:PARTIAL_STARTS]:  # the starts the registration fits (the best face wins)
            moved = apply_transform(found, truth) - apply_transform(pose, truth)
            R = found[:3, :3] @ pose[:3, :3].T
            errors.append((float(np.linalg.norm(moved, axis=1)[within(space, truth, centre, 55.0)].mean()),
                           float(np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1)))), cost))
        print("MEASURE", errors)
        error, angle, cost = min(errors)
        # measured: nose 1.3 mm / 1.2°, cheek 11.1 mm / 9.8° (the other starts 2.7-58 mm, 4.7-174°); the shape
        # fit, pose and shape together, takes it from there (the slow tests check where the registration ends)
        assert error < (3.0 if centre is tip else 14.0) and angle < (3.0 if centre is tip else 12.0), (centre, errors)


@pytest.mark.slow  # registers four scans (three without landmarks): about 3 minutes
def test_cut_scans_register_on_the_true_face_and_a_ball_cap_is_refused(space, uv, tmp_path):
    """A cohort face's raw scan and its cuts to 90, 70 and 55 mm around the nose tip: the whole scan registers
    as before (everything observed), each cut as partial, with the observed part on the true face within about
    a millimetre (measured 0.67, 0.44, 0.49 mm against 0.75 for the whole scan) and its area near the cut's;
    a ball's cap the size of the 55 mm cut is refused as an implausible face."""
    from facecover.ingest import ingest_scan

    truth = person_vertices(space, person_rng(1, "cohort", "subject01"), with_detail=True)
    scan_v, scan_f, pose = synthetic_scan(truth, space["faces"], uv, np.random.default_rng(5), ScanSettings())
    tip = apply_transform(pose, nose_tip(space, truth)[None])[0]
    for radius in (None, 90.0, 70.0, 55.0):
        v, f = (scan_v, scan_f) if radius is None else cut_scan(scan_v, scan_f, tip, radius)
        path = tmp_path / f"cut{radius}.ply"
        save_mesh(path, v, f)
        reg = ingest_scan(path, space)
        coverage = reg.report["coverage"]
        observed = np.ones(len(truth), bool) if reg.observed is None else reg.observed
        err = np.linalg.norm(apply_transform(np.linalg.inv(reg.scan_to_canonical), reg.vertices)
                             - apply_transform(pose, truth), axis=1)[observed].mean()
        assert coverage["partial"] == (radius is not None), coverage
        assert err < 1.2, (radius, err)
        if radius is not None:
            from facecover.meshtools import triangle_areas

            # the observed area is measured on the template mean (this face is smaller: 1.10 at 90 mm)
            assert 0.75 < coverage["observed_area_mm2"] / triangle_areas(v, f).sum() < 1.25, coverage
            assert len(coverage["unobserved_vertices"]) == int((~reg.observed).sum())
    import trimesh

    ball = trimesh.creation.icosphere(subdivisions=6, radius=80.0)
    v, f = cut_scan(np.asarray(ball.vertices), np.asarray(ball.faces), [0.0, 0.0, 80.0], 60.0)
    save_mesh(tmp_path / "ballcap.ply", v, f)
    with pytest.raises(FacecoverError, match=r"ballcap\.ply: does not look like a face: no face found in its "
                                             r"frontal renders, and registered as part of a face, .*implausible"):
        ingest_scan(tmp_path / "ballcap.ply", space)


@pytest.mark.slow  # registers four raw scans (three without landmarks) and fits each: about 4 minutes
def test_cuts_around_a_cheek_wound_are_covered_like_the_whole_scan(space, model, tmp_path):
    """A held-out person (made like the cohort's) with a 3 mm dent of 13 mm radius on the cheek, scanned raw;
    the scan cut to 70 mm around the wound is accepted and covered, the wound found about as well as on the
    whole scan and restored within RESTORE_GAP_MM of the whole scan's cover; cut to 55 mm around the wound it
    is covered as well or refused naming why. Cut to 55 mm around the nose tip (the dent's band reaches
    beyond it) it is refused saying how much healthy skin around the wound was seen."""
    from facecover.cover_scores import patient_case
    from facecover.heldout import dent, patient_faces, wound_site

    decoder, noise = model
    face = patient_faces(space, "cohort", 1, seed=5)[0]
    centre = wound_site(face, "cheek_right")
    h = dent(face, centre, 13.0, -3.0)
    settings = FitSettings()
    rows = {}
    for name, cut in (("whole", None), ("wound70", (face.vertices[centre], 70.0)),
                      ("wound55", (face.vertices[centre], 55.0)), ("nose55", (face.points["nose_tip"], 55.0))):
        rows[name] = patient_case(space, decoder, noise, settings, face, h, np.random.default_rng(1), tmp_path,
                                  cut=cut)
    print("MEASURE", {k: {m: r.get(m) for m in ("found_iou", "restore_mean_mm", "observed_mm2", "refused_cover")}
                      for k, r in rows.items()})
    whole = rows["whole"]
    assert whole["observed_mm2"] > 35000 and whole["restore_mean_mm"] < 0.7, whole
    # measured: whole 0.41 mm restore (IoU 0.75); wound70 0.49 mm (IoU 0.71, 19,294 mm² observed); wound55
    # refused (the fitted face implausible, mean z² 25: misplaced); nose55 refused (154 of 288 mm² of band seen)
    row = rows["wound70"]
    assert "refused_scan" not in row and "refused_cover" not in row, row
    assert row["observed_mm2"] < 0.6 * whole["observed_mm2"], row
    assert row["found_iou"] > whole["found_iou"] - 0.15 and row["coverage"] > 0.9, row
    assert abs(row["restore_mean_mm"] - whole["restore_mean_mm"]) < RESTORE_GAP_MM, (row, whole)
    for name in ("wound55", "nose55"):  # accepted and restored as the whole scan, or refused saying why
        row = rows[name]
        if "refused_scan" in row:
            assert "registered as part of a face" in row["refused_scan"], row
        elif "refused_cover" in row:
            assert "reaches the edge of the scanned part" in row["refused_cover"], row
        else:
            assert abs(row["restore_mean_mm"] - whole["restore_mean_mm"]) < RESTORE_GAP_MM, (name, row, whole)
    assert "reaches the edge of the scanned part" in rows["nose55"].get("refused_cover", ""), rows["nose55"]
