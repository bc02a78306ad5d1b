"""Learning stages: decoder, mapping network, SwAV, training, evaluation table (units: mm)."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from facecover import FacecoverError
from facecover.cli import main
from facecover.learn.data import fraction_of_subjects, read_split, region_vertex_weights, subjects_in
from facecover.learn.decoder import check_decoder, coefficients_of, decode, load_decoder, pca_decoder
from facecover.learn.network import load_checkpoint, load_mapping, mapping_network
from facecover.learn.swav import SwavSettings, pretrain_swav, sinkhorn, swav_model
from facecover.learn.train import (DecoderLayer, TrainSettings, decoded_l1, linear_start, predict_coefficients,
                                   train_mapping, vertex_l1)

# ------------------------------------------------------------------ decoder

def test_pca_decoder_reproduces_a_pool_face_from_its_coefficients(space):
    rng = np.random.default_rng(0)
    faces = space["vertices"] + rng.normal(0, 2.0, (8,) + space["vertices"].shape)
    decoder = pca_decoder(faces, 7)  # P - 1 components span every pool face
    assert decoder["basis"].shape == (7,) + space["vertices"].shape
    for face in faces:
        assert np.abs(decode(decoder, coefficients_of(decoder, face)) - face).max() < 1e-8
    assert np.isclose(decoder["explained_variance_ratio"].sum(), 1.0)
    # coefficients of pool faces are standard-normal-ish: the basis carries the standard deviations
    z = np.stack([coefficients_of(decoder, f) for f in faces])
    assert np.allclose(z.std(axis=0, ddof=1), 1.0, atol=1e-6)
    # the same leading modes as the SVD of the centred data (up to sign), also when truncated
    X = (faces - faces.mean(axis=0)).reshape(len(faces), -1)
    _, sv, Vt = np.linalg.svd(X, full_matrices=False)
    three = pca_decoder(faces.astype(np.float32), 3)
    scaled = (Vt[:3] * (sv[:3] / np.sqrt(len(faces) - 1))[:, None]).reshape(three["basis"].shape)
    signs = np.sign(np.einsum("knc,knc->k", scaled, three["basis"]))
    assert np.allclose(three["basis"], scaled * signs[:, None, None], atol=1e-4)
    assert np.allclose(three["explained_variance_ratio"], sv[:3] ** 2 / (sv**2).sum())


def test_user_decoder_checked_for_shape_and_units(space, tmp_path):
    n = len(space["vertices"])
    mean = space["vertices"]
    basis = np.zeros((5, n, 3))
    check_decoder(mean, basis, n)
    with pytest.raises(FacecoverError, match="metres"):
        check_decoder(mean / 1000.0, basis / 1000.0, n, "flame.npz")
    with pytest.raises(FacecoverError, match="template has"):
        check_decoder(mean[:5023], basis[:, :5023], n, "flame.npz")
    with pytest.raises(FacecoverError, match=r"'basis' must have shape"):
        check_decoder(mean, basis[:, :, :2], n, "flame.npz")
    path = tmp_path / "user.npz"
    np.savez(path, mean=mean / 1000.0, basis=basis)
    with pytest.raises(FacecoverError, match=f"{path}.*metres"):
        load_decoder(path, n)
    np.savez(path, mean=mean)
    with pytest.raises(FacecoverError, match="missing array"):
        load_decoder(path, n)


# ------------------------------------------------------------------ loss, network

def test_masked_loss_weights_vertices_as_configured(space):
    names = [str(n) for n in space["region_names"]]
    weights = region_vertex_weights(space["regions"], names, {n: (0.0 if n == "other" else 150.0) for n in names})
    w = torch.from_numpy(weights.astype(np.float32))
    target = torch.zeros(1, len(weights), 3)
    rim = int(np.flatnonzero(space["regions"] == names.index("other"))[0])
    nose = int(np.flatnonzero(space["regions"] == names.index("nose"))[0])
    moved = target.clone()
    moved[0, rim, 0] = 5.0  # a rim vertex weighs nothing
    assert float(vertex_l1(moved, target, w)) == 0.0
    moved[0, nose, :] = 2.0  # a nose vertex moved by 2 mm in x, y and z
    assert math.isclose(float(vertex_l1(moved, target, w)), 150.0 * 6.0 / (3.0 * weights.sum()), rel_tol=1e-5)
    with pytest.raises(FacecoverError, match="no weight for region"):
        region_vertex_weights(space["regions"], names, {"other": 1.0})



def test_training_loss_equals_the_masked_loss_of_the_decoded_vertices():
    """The one-pass loss used in training gives vertex_l1's values and gradients on decoded vertices."""
    rng = np.random.default_rng(0)
    n, k, b = 40, 6, 5
    layer = DecoderLayer({"mean": rng.normal(size=(n, 3)), "basis": rng.normal(size=(k, n, 3))}, torch.device("cpu"))
    targets = torch.from_numpy(rng.normal(size=(b, n, 3)).astype(np.float32))
    w = torch.from_numpy(rng.uniform(0.0, 150.0, n).astype(np.float32))
    z1 = torch.from_numpy(rng.normal(size=(b, k)).astype(np.float32)).requires_grad_()
    z2 = z1.detach().clone().requires_grad_()
    reference = vertex_l1(layer(z1), targets, w)
    fast = decoded_l1(z2, layer, layer.offsets(targets), w)
    assert torch.allclose(fast, reference, rtol=1e-5, atol=1e-6)
    (reference * torch.arange(1.0, b + 1)).sum().backward()
    (fast * torch.arange(1.0, b + 1)).sum().backward()
    assert torch.allclose(z2.grad, z1.grad, rtol=1e-4, atol=1e-6)

def test_mapping_network_has_micas_layout():
    net = mapping_network(60)
    linear = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(512, 300)] + [(300, 300)] * 3 + [(300, 60)]
    acts = [m for m in net.modules() if isinstance(m, torch.nn.LeakyReLU)]
    assert len(acts) == 4 and all(a.negative_slope == 0.2 for a in acts)
    x = torch.randn(3, 512)
    assert torch.allclose(net(x), net(5.0 * x), atol=1e-5)  # the embedding is L2-normalised first


def test_linear_start_is_the_ridge_solution_exactly(space):
    """The network's closed-form start computes the weighted ridge regression exactly (the trunk relays
    its input directions linearly), and training from it is seeded."""
    rng = np.random.default_rng(1)
    n_id, n = 30, len(space["vertices"])
    decoder = pca_decoder(space["vertices"] + rng.normal(0, 1.5, (12, n, 3)), 8)
    z = rng.standard_normal((n_id, 8))
    meshes = decode(decoder, z)
    proj = rng.standard_normal((8, 512))
    X = (z @ proj)[np.repeat(np.arange(n_id), 3)] + rng.normal(0, 0.3, (3 * n_id, 512))
    X = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)
    y = np.repeat(np.arange(n_id), 3)
    w = np.ones(n)
    train, val = (X[y < 24], y[y < 24], meshes), (X[y >= 24], y[y >= 24], meshes)
    net = mapping_network(8)
    fit = linear_start(net, decoder, w, train, val)
    from facecover.learn.train import weighted_ridge

    ridge = weighted_ridge(X[y < 24].astype(np.float64), y[y < 24], meshes, decoder, w,
                           (X[y >= 24].astype(np.float64), y[y >= 24], meshes))
    assert fit["alpha"] == ridge["alpha"]
    assert np.allclose(predict_coefficients(net, X), X @ ridge["W"] + ridge["b"], atol=1e-3)
    # held-out identities are predicted far better than by the mean face
    err = np.linalg.norm(decode(decoder, predict_coefficients(net, X[y >= 24])) - meshes[y[y >= 24]], axis=2).mean()
    assert err < 0.5 * np.linalg.norm(decoder["mean"] - meshes[y[y >= 24]], axis=2).mean()
    runs = []
    for _ in range(2):
        again = mapping_network(8)
        linear_start(again, decoder, w, train, val)
        history, best = train_mapping(again, decoder, w, train, val, TrainSettings(3, 16, 1e-3), seed=4,
                                      device=torch.device("cpu"), progress=False)
        runs.append(predict_coefficients(again, X))
        assert len(history) == 4 and history[best]["val_loss_mm"] == min(h["val_loss_mm"] for h in history)
    assert np.array_equal(runs[0], runs[1])


def test_training_beats_its_closed_form_start_on_held_out_people():
    """Identities on the unit sphere z (4-d), embedded linearly; their faces' coefficients are 4 z² − 1, which no
    linear map of the embedding can give (ridge ≈ the mean face). Training must leave the ridge start behind
    on 60 people it neither trained nor chose its epoch on."""
    rng = np.random.default_rng(0)
    K, N, n = 4, 40, 360
    basis = 10 * np.linalg.qr(rng.standard_normal((3 * N, K)))[0].T.reshape(K, N, 3)
    decoder = {"mean": rng.standard_normal((N, 3)), "basis": basis}
    z = rng.standard_normal((n, K))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    meshes = decode(decoder, 4 * z**2 - 1)
    X = (z @ np.linalg.qr(rng.standard_normal((512, K)))[0].T + 0.01 * rng.standard_normal((n, 512))).astype(
        np.float32)
    y = np.arange(n)
    train, val, test = (X[:240], y[:240], meshes), (X[240:300], y[240:300], meshes), X[300:]

    def error(net):  # mean absolute coordinate error (mm) on the held-out people
        return np.abs(decode(decoder, predict_coefficients(net, test)) - meshes[300:]).mean()

    net = mapping_network(K)
    linear_start(net, decoder, np.ones(N), train, val)
    start = error(net)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny network: 2 s on one thread, 20 s on two when the cores are shared
    try:
        train_mapping(net, decoder, np.ones(N), train, val, TrainSettings(8, 16, 1e-3, patience=0), seed=0,
                      device=torch.device("cpu"), progress=False)
    finally:
        torch.set_num_threads(threads)
    # measured: ridge start 1.25 mm (mean face 1.27), trained 0.27 mm in 8 epochs (0.35-0.40 with data seeds
    # 1-3); a loop that does not step (learning rate 0) stays at 1.25
    assert error(net) < 0.5 * start


# ------------------------------------------------------------------ SwAV

def test_sinkhorn_codes_have_the_required_marginals():
    torch.manual_seed(0)
    # scores as SwAV makes them: cosines between L2-normalised projections and prototypes
    z = torch.nn.functional.normalize(torch.randn(40, 16), dim=1)
    prototypes = torch.nn.functional.normalize(torch.randn(10, 16), dim=1)
    scores = z @ prototypes.T
    raw = torch.softmax(scores / 0.05, dim=1) / 40.0  # the codes before any balancing
    spread = []
    for iterations in (3, 200):
        q = sinkhorn(scores, epsilon=0.05, iterations=iterations) / 40.0  # undo the final rescaling
        assert torch.allclose(q.sum(dim=1), torch.full((40,), 1 / 40), atol=1e-7)  # each sample: exactly 1/B
        spread.append(float((q.sum(dim=0) - 1 / 10).abs().max()))  # each prototype: 1/K, in the limit
    assert spread[0] < float((raw.sum(dim=0) - 1 / 10).abs().max())  # 3 iterations already balance them
    assert spread[1] < 1e-5
    # no gradient flows through the codes
    s = torch.randn(8, 4, requires_grad=True)
    assert not sinkhorn(s).requires_grad


def test_swav_loss_predicts_each_views_code_from_the_other_views():
    """Three views of 4 samples scored on 4 prototypes: views 0 and 1 put sample i on prototype i, view 2 on
    prototype i + 1. The codes are one-hot (Sinkhorn at ε = 0.05: off-diagonal 2e-9), so by hand each ordered
    pair of agreeing views costs a = ln(1 + 3 e^-10) and each disagreeing pair b = ln(e^10 + 3) (τ = 0.1)."""
    from facecover.learn.swav import swapped_prediction_loss

    same, shifted = torch.eye(4), torch.eye(4)[[1, 2, 3, 0]]
    loss = float(swapped_prediction_loss([same, same, shifted], SwavSettings()))
    a, b = math.log(1 + 3 * math.exp(-10)), math.log(math.exp(10) + 3)
    # measured 6.666803 against (2a + 4b) / 6 = 6.666803 (difference 5e-7, float32); a loss that predicts
    # each view's own code gives a = 0.000136, one averaged over all V² pairs 4.44
    assert loss == pytest.approx((2 * a + 4 * b) / 6, abs=1e-4)
    assert float(swapped_prediction_loss([same, shifted], SwavSettings())) == pytest.approx(b, abs=1e-4)


def test_swav_learns_without_collapse():
    """Views of the same render must agree: the loss falls below ln K and several prototypes are used."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((12, 512))
    views = centres[:, None] + 0.3 * rng.standard_normal((12, 5, 512))
    views = np.repeat(views, 4, axis=0) + 0.1 * rng.standard_normal((48, 5, 512))
    settings = SwavSettings(epochs=30, batch_size=24, learning_rate=1e-3, prototypes=8, projection_dim=32,
                            freeze_prototypes_iterations=5)
    model = swav_model(mapping_network(10).trunk, 300, settings)
    history = pretrain_swav(model, views.astype(np.float32), settings, seed=0, device=torch.device("cpu"),
                            progress=False)
    assert history[0]["loss"] > history[-1]["loss"]
    assert history[-1]["loss"] < 0.8 * math.log(8)
    assert history[-1]["prototypes_used"] > 1


def test_fraction_picks_whole_subjects_seeded():
    subjects = [f"subject{i:02d}" for i in range(1, 19)]
    picked = fraction_of_subjects(subjects, 0.2, seed=7)
    assert len(picked) == 4 and set(picked) <= set(subjects) and picked == sorted(picked)
    assert picked == fraction_of_subjects(subjects, 0.2, seed=7) != fraction_of_subjects(subjects, 0.2, seed=8)
    assert fraction_of_subjects(subjects, 1.0, seed=7) == subjects
    for bad in (0.0, 1.5, -0.2):
        with pytest.raises(FacecoverError, match="swav.fractions"):
            fraction_of_subjects(subjects, bad, seed=7)


def test_error_heatmap_shows_a_right_face_lit_and_the_wound_edge(space, tmp_path):
    """Zero error must not draw the face black (it would vanish on the black background): the shading shows,
    and the true wound's edge is drawn in blue."""
    import matplotlib.image

    from facecover.summary import error_heatmap_figure

    v = space["vertices"]
    nose_tip = space["landmark_vertices"][list(space["landmark_names"]).index("nose_tip")]
    wound = np.linalg.norm(v - v[nose_tip], axis=1) < 15.0
    error_heatmap_figure(space["faces"], [{"vertices": v, "error_mm": np.zeros(len(v)), "wound": wound,
                                           "title": "zero error"}], tmp_path / "heatmap.png")
    r, g, b = np.moveaxis(matplotlib.image.imread(tmp_path / "heatmap.png")[..., :3], -1, 0)
    skin = (r > 0.35) & (g > 0.35) & (np.minimum(r, b) < 0.95)  # lit, light-coloured, not the white margin
    assert skin.sum() > 20000  # the face (about 40000 pixels) lit, not a dark silhouette
    assert ((b > r + 0.25) & (b > g + 0.1)).sum() > 20  # the wound's edge


# ------------------------------------------------------------------ evaluation

def test_wound_iou_is_intersection_over_union_pooled_per_region():
    """Two images of 20 vertices (nose 0-9, chin 10-19), counted by hand. Image 1: nose predicted 0-5,
    wound 3-8 (3 shared of 9); chin predicted 10-13, wound 10-11 (2 of 4). Image 2: nose predicted and
    wound 0-1 (2 of 2); chin nothing. Pooled per region: nose 5/11, chin 2/4, the rest no wound (NaN)."""
    from facecover.learn.evaluate import IOU_REGIONS, image_metrics, summary_row

    regions = np.repeat([0, 1], 10)  # 0 nose, 1 chin
    masks = {key: np.zeros(20, bool) for key in IOU_REGIONS}
    masks["nose"], masks["chin"], masks["face"] = regions == 0, regions == 1, np.ones(20, bool)
    injured = np.zeros((20, 3))

    def image(predicted, wound):
        aligned = injured.copy()
        aligned[predicted, 2] += 1.0  # 1 mm off the injured face: predicted wound at a 0.5 mm threshold
        mask = np.zeros(20, bool)
        mask[wound] = True
        return image_metrics(aligned, aligned, injured, mask, masks, lambda p: np.zeros(len(p)), 0.5)

    rows = [image([0, 1, 2, 3, 4, 5, 10, 11, 12, 13], [3, 4, 5, 6, 7, 8, 10, 11]), image([0, 1], [0, 1])]
    assert [(r["inter_nose"], r["union_nose"], r["inter_chin"], r["union_chin"]) for r in rows] == \
        [(3, 9, 2, 4), (2, 2, 0, 0)]
    per_image = pd.DataFrame([{**r, "view": "0", "wound_area_mm2": 1.0} for r in rows])
    row = summary_row("hand", per_image, np.array([0.5, 1.5]))
    # exact counts, so a 1e-12 tolerance: the right formula gives nose 5/11 = 0.4545 and chin 0.5; a union
    # that counts the intersection twice gives 5/16 = 0.3125 and 2/6 = 0.333, the mean of the per-image
    # ratios (no pooling) 0.667 for the nose
    assert row["iou_nose"] == pytest.approx(5 / 11, abs=1e-12)
    assert row["iou_chin"] == pytest.approx(2 / 4, abs=1e-12)
    assert all(np.isnan(row[f"iou_{key}"]) for key in ("forehead", "cheeks", "mouth", "eyes"))


# ------------------------------------------------------------------ the stages, end to end (tiny)

from learning_workspace import REGION_WEIGHTS, run_learning  # noqa: E402


@pytest.fixture(scope="module")
def workspace(space, space_file, tmp_path_factory):
    from learning_workspace import make_workspace

    return make_workspace(space, tmp_path_factory.mktemp("learn"))


@pytest.fixture(scope="module")
def learned(workspace, space_file):
    return run_learning(workspace, space_file, workspace / "run1")


def test_stages_write_checkpoints_logs_and_table(learned, workspace):
    table = pd.read_csv(learned / "table.csv")
    assert list(table.method) == ["nossl", "ssl50", "mean", "injured", "completion"]
    assert (table.images == [8, 8, 8, 8, 8]).all()  # 2 test subjects x 2 variants x 2 views
    row = table.set_index("method")
    # the image model beats the mean face; the injured face is perfect off the wound, wrong inside it
    assert row.loc["nossl", "face_mae_mm"] < row.loc["mean", "face_mae_mm"]
    assert row.loc["injured", "face_mae_mm"] < 0.2 and row.loc["injured", "wound_mae_mm"] > 0.5
    assert row.loc["injured", "iou_forehead"] == 0.0  # it never departs from the injured face
    assert row.loc["completion", "face_mae_mm"] < row.loc["mean", "face_mae_mm"]
    for column in ("iou_forehead", "iou_nose", "iou_cheeks", "iou_mouth", "iou_chin", "iou_eyes",
                   "wound_mae_small_mm", "wound_mae_large_mm", "truth_face_mae_mm", "surface_distance_mm"):
        assert column in table
    per_image = pd.read_csv(learned / "nossl_test.csv")
    frontal = per_image[per_image["view"] == 0]
    assert len(frontal) == 4  # the frontal view of each variant
    assert row.loc["nossl", "face_mae_frontal_mm"] == pytest.approx(frontal.face_mae_mm.mean(), abs=1e-4)
    assert row.loc["nossl", "wound_mae_frontal_mm"] == pytest.approx(frontal.wound_mae_mm.mean(), abs=1e-4)
    log = pd.read_csv(learned / "swav_0.5.csv")
    assert list(log.columns[:3]) == ["epoch", "loss", "prototypes_used"] and len(log) == 3
    swav = load_checkpoint(learned / "swav_0.5.pt", "swav")
    assert swav["fraction"] == 0.5 and len(swav["subjects"]) == 3


def test_test_subjects_never_reach_training(learned, workspace):
    split = read_split(workspace / "splits.csv")
    test = set(subjects_in(split, "test"))
    for experiment in ("nossl", "ssl50"):
        _, ckpt = load_mapping(learned / f"recon_{experiment}.pt")
        assert set(ckpt["subjects_train"]) == set(subjects_in(split, "train"))
        assert not (set(ckpt["subjects_train"]) | set(ckpt["subjects_val"])) & test
    assert not set(load_checkpoint(learned / "swav_0.5.pt")["subjects"]) - set(subjects_in(split, "train"))


def test_same_config_gives_a_byte_identical_table(learned, workspace, space_file):
    again = run_learning(workspace, space_file, workspace / "run2")
    assert (again / "table.csv").read_bytes() == (learned / "table.csv").read_bytes()


def test_bad_inputs_are_named_and_write_nothing(learned, workspace, space_file, tmp_path, capsys):
    out = tmp_path / "never.pt"
    base = ["--space", str(space_file), "--decoder", str(learned / "decoder.npz"), "--split",
            str(workspace / "splits.csv"), "--embeddings-dir", str(workspace / "embeddings"), "--registered-dir",
            str(workspace / "registered"), "--region-weights", REGION_WEIGHTS, "--seed", "1", "--device", "cpu",
            "--out", str(out), "--log",
            str(tmp_path / "never.csv")]
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    for ckpt, message in ((tmp_path / "missing.pt", "checkpoint not found"), (corrupt, "cannot read checkpoint")):
        assert main(["finetune", "--experiment", "nossl", "--base", str(ckpt), *base]) == 1
        assert f"{ckpt}: {message}" in capsys.readouterr().err
    # embeddings of the wrong width
    wrong = tmp_path / "embeddings"
    wrong.mkdir()
    for s in [f"subject{i:02d}" for i in range(1, 11)]:
        np.savez(wrong / f"{s}.npz", stem=np.array(["00_0"]), clean=np.zeros((1, 128), np.float32),
                 augmented=np.zeros((1, 2, 128), np.float32))
    args = [a if a != str(workspace / "embeddings") else str(wrong) for a in base]
    assert main(["finetune", "--experiment", "nossl", "--base", str(learned / "base.pt"), *args]) == 1
    assert "width" in capsys.readouterr().err
    # a split without a test subject
    split = tmp_path / "splits.csv"
    pd.DataFrame({"subject": [f"subject{i:02d}" for i in range(1, 11)], "set": ["train"] * 8 + ["val"] * 2}).to_csv(
        split, index=False)
    args = [a if a != str(workspace / "splits.csv") else str(split) for a in base]
    assert main(["finetune", "--experiment", "nossl", "--base", str(learned / "base.pt"), *args]) == 1
    assert f"{split}: no test subject" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "never.csv").exists()
