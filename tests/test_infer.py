"""Inference: the image's face fitted to the injured scan, the wound found, patient photos (mm)."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from facecover import FacecoverError
from facecover.cohort import person_rng, person_vertices
from facecover.learn.decoder import coefficients_of, decode, pca_decoder
from facecover.learn.infer import FitSettings, fit_healthy_face, fit_noise
from facecover.meshtools import rigid_transform
from facecover.scars import ScarSettings, one_scar, prepare_face

INSIGHTFACE_IMAGES = Path(__import__("insightface").__file__).parent / "data" / "images"


@pytest.fixture(scope="module")
def face(space):
    healthy = person_vertices(space, person_rng(4, "cohort", "subject99"), with_detail=True)
    return healthy, prepare_face(healthy, space["faces"], space["regions"])


def scarred(face, kind, region, seed, depth=(2.0, 4.0)):
    healthy, prepared = face
    settings = ScarSettings(depth_mm=depth, severe_depth_mm=(3.0, 6.0))
    h, _ = one_scar(prepared, kind, region, np.random.default_rng(seed), settings)
    return healthy + h[:, None] * prepared.normals, np.abs(h) > settings.mask_threshold_mm


def test_wound_found_by_the_fit_matches_the_scar(space, model, face):
    """Over a dozen random scars (every kind and region) the wound the fit finds overlaps the simulated
    mask with IoU ≥ 0.75 on average; outside it the healthy face is the skin, inside close to the truth."""
    decoder, noise = model
    rng = np.random.default_rng(11)
    ious, errors = [], []
    for _ in range(12):
        kind = str(rng.choice(["round", "elongated", "severe"]))
        region = str(rng.choice(["forehead", "nose", "cheek_left", "cheek_right", "mouth", "chin", "eyes"]))
        injured, mask = scarred(face, kind, region, int(rng.integers(1000)))
        fit = fit_healthy_face(decoder, injured, space["faces"], None, noise)
        ious.append((fit["wound"] & mask).sum() / (fit["wound"] | mask).sum())
        assert np.array_equal(fit["healthy"][~fit["wound"]], injured[~fit["wound"]])
        errors.append(np.linalg.norm(fit["healthy"] - face[0], axis=1)[mask].mean())
        assert errors[-1] < np.linalg.norm(injured - face[0], axis=1)[mask].mean()
    # people with real anatomy (ICT-FaceKit + detail the 60-component decoder cannot follow): measured mean
    # 0.77-0.79, least 0.35-0.57 (the hand-made space's people gave 0.85+); a fit that misses the scar's rim or
    # calls the face around it wound falls far below
    assert np.mean(ious) >= 0.72 and min(ious) >= 0.3, np.round(ious, 2)
    assert np.mean(errors) < 0.3


def test_grow_wound_seeds_only_above_the_seed_threshold(space):
    """Hysteresis on the face mesh: a patch scoring 2 thresholds everywhere (faint) is not a wound; a patch
    scoring 1.5 with one vertex at 5 (a seed) is, all of it; a one-vertex speck of 10 (6 mm²) is dropped under a
    10 mm² minimum. Seeding at
    the grow threshold (1) would also return the faint patch."""
    from facecover.learn.infer import grow_wound, mesh_operators

    v = space["vertices"]
    ops = mesh_operators(v, space["faces"])
    regions = list(space["region_names"])

    def disc(region, k, radius):
        ids = np.flatnonzero(space["regions"] == regions.index(region))
        centre = ids[k % len(ids)]
        return np.linalg.norm(v - v[centre], axis=1) < radius, centre

    faint, _ = disc("cheek_left", 30, 6.0)
    seeded, peak = disc("cheek_right", 60, 6.0)
    speck, top = disc("forehead", 40, 0.5)
    score = np.zeros(len(v))
    score[faint], score[seeded], score[speck] = 2.0, 1.5, 10.0
    score[peak] = 5.0
    assert speck.sum() == 1 and ops["areas"][faint].sum() > 50.0 and ops["areas"][seeded].sum() > 50.0
    wound = grow_wound(score, ops["graph"], ops["areas"], seed=3.0, min_area_mm2=10.0)
    assert np.array_equal(wound, seeded)
    assert not grow_wound(np.minimum(score, 2.9), ops["graph"], ops["areas"], 3.0, 10.0).any()  # no seed: no wound


def test_faint_patches_are_not_wounds_but_the_dent_is(space, model, face):
    """A 3 mm dent (10 mm radius) on the forehead and six faint patches (±0.3 mm, 6 mm radius) on the cheeks,
    chin and forehead: the fit finds the dent and none of the patches. Their remaining offset lies between the
    grow threshold and the seed threshold: measured 0 mm² of the 422 mm² of patches found with seeds at 3
    thresholds (the dent: 0.68 IoU), 83 mm² when seeding at the grow threshold (1), which takes every faint
    patch that rises above it."""
    from facecover.learn.infer import mesh_operators
    from facecover.scars import round_scar
    from facecover.template import REGION_ID

    decoder, noise = model
    healthy, prepared = face

    def site(region, k):
        ids = np.flatnonzero(space["regions"] == REGION_ID[region])
        return int(ids[k % len(ids)])

    dent = round_scar(prepared.graph, site("forehead", 40), 10.0, -3.0)
    h, faint = dent.copy(), np.zeros(len(healthy), bool)
    for i, (region, k) in enumerate([("cheek_left", 30), ("cheek_right", 60), ("chin", 20), ("forehead", 200),
                                     ("cheek_left", 90), ("cheek_right", 120)]):
        patch = round_scar(prepared.graph, site(region, k), 6.0, 0.3 * (-1) ** i)
        h, faint = h + patch, faint | (np.abs(patch) > 0.02)
    injured = healthy + h[:, None] * prepared.normals
    truth = np.abs(dent) > 0.1
    fit = fit_healthy_face(decoder, injured, space["faces"], None, noise)
    areas = mesh_operators(injured, space["faces"])["areas"]
    found_faint = areas[fit["wound"] & faint].sum()
    assert found_faint < 25.0, found_faint
    iou = (fit["wound"] & truth).sum() / ((fit["wound"] & ~faint) | truth).sum()
    assert iou >= 0.55, iou  # measured 0.68


def test_fit_recovers_a_known_rigid_offset(space, model, face):
    from scipy.spatial.transform import Rotation

    decoder, noise = model
    injured, mask = scarred(face, "round", "cheek_right", 5)
    R = Rotation.from_euler("xyz", [4.0, -6.0, 3.0], degrees=True).as_matrix()
    t = np.array([3.0, -2.0, 5.0])
    fit = fit_healthy_face(decoder, injured @ R.T + t, space["faces"], None, noise)
    # the fitted decoder face sits where the moved scan is: its rigid fit to the moved healthy face is small
    R_fit, t_fit = rigid_transform(fit["fitted"], face[0] @ R.T + t, np.ones(len(mask)))
    angle = np.degrees(np.arccos(np.clip((np.trace(R_fit) - 1) / 2, -1, 1)))
    assert angle < 0.3 and np.linalg.norm(t_fit) < 0.5
    err = np.linalg.norm(fit["healthy"] - (face[0] @ R.T + t), axis=1)
    assert err[mask].mean() < 0.35
    # a given wound mask is used as is
    given = fit_healthy_face(decoder, injured, space["faces"], None, noise, wound=mask)
    assert np.array_equal(given["wound"], mask) and given["wound_given"]


def test_the_image_prior_pulls_the_fit_where_the_skin_says_nothing(space, model, face):
    """Inside a large wound the fit leans on its prior: the true face's coefficients as prior give a better
    healthy face there than the mean face does."""
    decoder, noise = model
    injured, mask = scarred(face, "severe", "cheek_left", 7)
    settings = FitSettings(prior_weight_mm2=50.0)
    truth = coefficients_of(decoder, face[0])
    with_truth = fit_healthy_face(decoder, injured, space["faces"], truth, noise, settings, wound=mask)
    with_mean = fit_healthy_face(decoder, injured, space["faces"], None, noise, settings, wound=mask)
    err = [np.linalg.norm(f["healthy"] - face[0], axis=1)[mask].mean() for f in (with_truth, with_mean)]
    assert err[0] < err[1]


def test_inference_returns_a_known_face_within_the_training_error(space):
    """A pool identity's *new* view (an embedding the model never saw: views 0-2 train it, view 3 chooses the
    ridge penalty, view 4 is held out), through a model trained on its other views, comes back as that face,
    about as well as the training views do. Measured: training views 0.24 mm (worst 0.31), held-out views
    0.28 mm (worst 0.43); a model that only reproduces the rows it was trained on (the mean face for any other
    embedding) gives 3.7 mm on the held-out views and still 0.24 mm on its training rows."""
    from facecover.learn.network import mapping_network
    from facecover.learn.train import linear_start, predict_coefficients

    rng = np.random.default_rng(3)
    pool = np.stack([person_vertices(space, person_rng(6, "pool", f"q{i}"), with_detail=True) for i in range(60)])
    decoder = pca_decoder(pool, 40)
    z = np.stack([coefficients_of(decoder, v) for v in pool])
    views = 5
    y, view = np.repeat(np.arange(60), views), np.tile(np.arange(views), 60)
    X = (z @ rng.standard_normal((40, 512)))[y] + rng.normal(0, 0.2, (len(y), 512))
    X = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)
    train, val, held = view < 3, view == 3, view == 4
    net = mapping_network(40)
    linear_start(net, decoder, np.ones(len(space["vertices"])), (X[train], y[train], pool), (X[val], y[val], pool))

    def error(rows):
        return np.linalg.norm(decode(decoder, predict_coefficients(net, X[rows])) - pool[y[rows]], axis=2).mean(axis=1)

    training_error, held_error = error(train), error(held)
    assert training_error.mean() < 0.5
    assert held_error.mean() < 0.5 and held_error.mean() <= 1.5 * training_error.mean(), \
        (held_error.mean(), training_error.mean())
    # identity 2's held-out view: that face, not another pool face
    one = decode(decoder, predict_coefficients(net, X[held][2:3]))[0]
    others = np.linalg.norm(one - pool, axis=2).mean(axis=1)
    assert np.argmin(others) == 2 and others[2] <= 2.0 * training_error.max(), others[2]
    assert torch.is_grad_enabled()


# ------------------------------------------------------------------ photos

def test_photo_with_one_face(tmp_path):
    from facecover.photo import photo_face

    face = photo_face(INSIGHTFACE_IMAGES / "Tom_Hanks_54745.png")
    assert face["crop"].shape == (112, 112, 3) and face["faces_found"] == 1
    eyes, mouth = face["landmarks"][:2], face["landmarks"][3:]
    assert eyes[0, 0] < eyes[1, 0] and mouth[0, 0] < mouth[1, 0] and eyes[:, 1].max() < mouth[:, 1].min()
    # the same photo in grey-scale still works
    from PIL import Image

    grey = tmp_path / "grey.png"
    Image.open(INSIGHTFACE_IMAGES / "Tom_Hanks_54745.png").convert("L").save(grey)
    assert np.abs(photo_face(grey)["landmarks"] - face["landmarks"]).max() < 3.0


def test_photo_with_several_faces_uses_the_largest_with_a_notice():
    from facecover.photo import photo_face

    notices = []
    face = photo_face(INSIGHTFACE_IMAGES / "t1.jpg", notice=notices.append)
    assert face["faces_found"] >= 2 and len(notices) == 1 and "using the largest" in notices[0]


def test_photo_without_a_face_or_corrupt_is_refused(tmp_path):
    from PIL import Image

    from facecover.photo import photo_face

    blank = tmp_path / "wall.png"
    Image.new("RGB", (256, 256), (128, 120, 110)).save(blank)
    with pytest.raises(FacecoverError, match=f"{blank}: no face found"):
        photo_face(blank)
    corrupt = tmp_path / "photo.jpg"
    corrupt.write_bytes(b"\xff\xd8 this is not a jpeg")
    with pytest.raises(FacecoverError, match=f"{corrupt}: cannot read the photo"):
        photo_face(corrupt)
    with pytest.raises(FacecoverError, match="photo not found"):
        photo_face(tmp_path / "missing.png")


def test_patient_folder_without_scan_or_photo_is_a_clear_error(tmp_path):
    import subprocess
    import sys

    import yaml

    root = Path(__file__).resolve().parents[1]
    (tmp_path / "workflow").symlink_to(root / "workflow")
    (tmp_path / "src").symlink_to(root / "src")
    shutil.copy(root / "config.yaml", tmp_path / "config.yaml")
    config = yaml.safe_load((root / ".test/config.yaml").read_text())
    (tmp_path / "patients" / "jane").mkdir(parents=True)
    shutil.copy(INSIGHTFACE_IMAGES / "Tom_Hanks_54745.png", tmp_path / "patients" / "jane" / "photo.png")
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(config))
    cmd = [str(Path(sys.executable).parent / "snakemake"), "--snakefile", str(root / "Snakefile"), "--directory",
           str(tmp_path), "--configfile", str(tmp_path / "cfg.yaml"), "-n", "results/prints/jane.stl"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode != 0 and "patients/jane: no scan" in res.stdout + res.stderr


# ------------------------------------------------------------------ a wound given by the user

def scan_pose(angle=0.5, shift=(-40.0, 10.0, 520.0)) -> np.ndarray:
    """An ingest report's scan_to_canonical (4, 4): a rotation about y and a shift."""
    c, s = np.cos(angle), np.sin(angle)
    T = np.eye(4)
    T[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    T[:3, 3] = shift
    return T


@pytest.fixture(scope="module")
def cheek_wound(space):
    """A registered face (the template, canonical mm) and a true wound: a 10 mm disc on the right cheek."""
    from facecover.template import REGION_ID

    v = space["vertices"]
    cheek = np.flatnonzero(space["regions"] == REGION_ID["cheek_right"])
    centre = v[cheek[len(cheek) // 2]]
    return v, np.linalg.norm(v - centre, axis=1) < 10.0


def write_selection(folder, space, registered, truth, T, scale_to_mm):
    """The wound's region cut from the patient's scan (a finer mesh of the same skin, in the scan's frame and
    units) as wound.ply, and the ingest report (scan_to_canonical, scale_to_mm) beside it."""
    import json

    import trimesh

    from facecover.meshtools import apply_transform, subdivide

    scan_v, scan_f, carried = subdivide(registered, space["faces"], truth.astype(float))
    inside = scan_f[(carried[scan_f, 0] > 0.5).all(axis=1)]  # the faces of the selected region
    in_scan = apply_transform(np.linalg.inv(T), scan_v) / scale_to_mm
    folder.mkdir(parents=True, exist_ok=True)
    selection = folder / "wound.ply"
    trimesh.Trimesh(in_scan, inside, process=True).export(selection)
    report = folder / "registered.json"
    report.write_text(json.dumps({"scan_to_canonical": T.tolist(), "scale_to_mm": scale_to_mm}))
    return selection, report


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


@pytest.mark.parametrize("scale_to_mm", [1.0, 10.0])
def test_a_wound_selected_on_the_scan_is_read_in_its_frame_and_units(space, cheek_wound, tmp_path, scale_to_mm):
    """wound.ply (the wound's region cut from a posed scan, in mm or in cm) maps onto the registered vertices of
    the true wound. Measured: IoU 0.90 in both units (the 2 mm reach takes a ring of the rim's neighbours);
    the pose read the wrong way round puts the selection 0.5 m away (refused: no vertex within 2 mm), a cm
    scan read as mm shrinks it 10 times towards the scan's origin (refused likewise)."""
    from facecover.commands.infer import _given_wound

    registered, truth = cheek_wound
    selection, report = write_selection(tmp_path, space, registered, truth, scan_pose(), scale_to_mm)
    wound = _given_wound(str(selection), str(report), registered)
    assert wound.dtype == bool and wound.shape == truth.shape
    assert iou(wound, truth) >= 0.85, iou(wound, truth)
    assert truth[wound].mean() >= 0.85 and wound[truth].all()  # on the wound, and all of it


def test_a_wound_mask_is_read_as_given_and_bad_wound_files_name_the_file(space, cheek_wound, tmp_path):
    from facecover import FacecoverError
    from facecover.commands.infer import _given_wound
    from facecover.files import save_npz

    registered, truth = cheek_wound
    save_npz(tmp_path / "wound.npz", wound=truth)
    assert np.array_equal(_given_wound(str(tmp_path / "wound.npz"), None, registered), truth)
    save_npz(tmp_path / "short.npz", wound=truth[:100])
    with pytest.raises(FacecoverError, match="short.npz: needs a boolean 'wound' array"):
        _given_wound(str(tmp_path / "short.npz"), None, registered)
    selection, report = write_selection(tmp_path, space, registered, truth, scan_pose(), 1.0)
    with pytest.raises(FacecoverError, match="needs the ingest report"):
        _given_wound(str(selection), None, registered)
    # a selection from another scan (another pose) lies nowhere on this face
    other, _ = write_selection(tmp_path / "other", space, registered, truth, scan_pose(0.5, (60.0, 0.0, 400.0)), 1.0)
    with pytest.raises(FacecoverError, match="no registered vertex lies within 2 mm"):
        _given_wound(str(other), str(report), registered)


@pytest.fixture(scope="module")
def infer_inputs(space, space_file, model, tmp_path_factory):
    """What `facecover infer` reads, as the workflow writes it: the decoder, a mapping checkpoint (untrained:
    a fixed random network of the decoder's width), an embedding cache of one render, the fit's noise."""
    from facecover.files import save_npz
    from facecover.learn.network import mapping_network, save_checkpoint

    decoder, noise = model
    root = tmp_path_factory.mktemp("infer")
    save_npz(root / "decoder.npz", mean=decoder["mean"], basis=decoder["basis"])
    torch.manual_seed(0)
    net = mapping_network(len(decoder["basis"]))
    save_checkpoint(root / "checkpoints" / "recon_nossl.pt", net.state_dict(), kind="mapping",
                    n_coefficients=len(decoder["basis"]))
    e = np.random.default_rng(0).standard_normal((1, 512)).astype(np.float32)
    e /= np.linalg.norm(e)
    save_npz(root / "embeddings.npz", stem=np.array(["00_0"]), clean=e, augmented=e[:, None])
    save_npz(root / "fit_noise.npz", noise_mm=noise)
    return root


def run_infer(space_file, inputs, injured, out, *extra):
    from facecover.cli import main

    return main(["infer", "--subject", "jane", "--space", str(space_file), "--decoder", str(inputs / "decoder.npz"),
                 "--experiment", "nossl", "--checkpoints-dir", str(inputs / "checkpoints"), "--embeddings",
                 str(inputs / "embeddings.npz"), "--image", "00_0", "--injured", str(injured), "--fit-noise",
                 str(inputs / "fit_noise.npz"), *extra, "--out", str(out / "healthy.ply"), "--out-wound",
                 str(out / "wound.npz"), "--report", str(out / "report.json")])


def test_infer_command_uses_the_given_wound(space, space_file, face, infer_inputs, tmp_path):
    """`facecover infer --wound` on a scarred face: with the true mask as wound.npz the wound written is that
    mask and the healthy face is the skin outside it; with the mask's region cut from the posed scan (in cm,
    wound.ply) the wound written is that region (IoU 0.89 measured, 39 of 44 vertices; the 2 mm reach takes
    a ring of the rim's neighbours)."""
    import json

    from facecover.files import load_mesh_arrays, load_npz, save_mesh, save_npz

    injured, mask = scarred(face, "round", "cheek_right", 5)
    save_mesh(tmp_path / "injured.ply", injured, space["faces"])
    save_npz(tmp_path / "wound.npz", wound=mask)
    assert run_infer(space_file, infer_inputs, tmp_path / "injured.ply", tmp_path, "--wound",
                     str(tmp_path / "wound.npz")) == 0
    written = load_npz(tmp_path / "wound.npz")["wound"].astype(bool)
    report = json.loads((tmp_path / "report.json").read_text())
    assert np.array_equal(written, mask) and report["wound_source"].startswith("given")
    healthy = load_mesh_arrays(tmp_path / "healthy.ply")[0]
    assert np.abs(healthy[~mask] - injured[~mask]).max() < 1e-3  # float32 in the file
    error = [np.linalg.norm(mesh - face[0], axis=1)[mask].mean() for mesh in (healthy, injured)]
    assert error[0] < error[1], error

    selection, registration = write_selection(tmp_path, space, injured, mask, scan_pose(), 10.0)
    assert run_infer(space_file, infer_inputs, tmp_path / "injured.ply", tmp_path, "--wound", str(selection),
                     "--registration", str(registration)) == 0
    written = load_npz(tmp_path / "wound.npz")["wound"].astype(bool)
    assert iou(written, mask) >= 0.8 and written[mask].all(), iou(written, mask)
