"""Identity encoder (bootstrap ArcFace) and the embedding cache."""

import json

import numpy as np
import pytest

from facecover import FacecoverError
from facecover.cli import main
from facecover.encoder import (AugmentSettings, EncoderSettings, aligned_face, arcface_logits, augmented_face,
                               embed_faces, export_onnx, identities_in, load_identity_encoder, load_render,
                               to_tensor_batch, train_identity_encoder, verification_figures)


@pytest.fixture(scope="session")
def pool_renders(space_file, tmp_path_factory):
    """Renders (2 views, 128 px) of 12 clean pool identities, as the render_pool stage writes them."""
    folder = tmp_path_factory.mktemp("pool")
    assert main(["pool", "--space", str(space_file), "--count", "12", "--seed", "3",
                 "--out", str(folder / "pool.npz")]) == 0
    assert main(["render-pool", "--space", str(space_file), "--pool", str(folder / "pool.npz"), "--settings",
                 '{"views": 2, "size": 128}', "--seed", "3", "--out-dir", str(folder / "renders")]) == 0
    return folder / "renders"


@pytest.fixture(scope="session")
def learned(space_file, tmp_path_factory):
    """An encoder trained long enough to learn: 40 pool identities x 3 views, 30 epochs, seed 5 (about
    10 s); 10 identities held out. Returns (renders folder, ONNX path, report)."""
    import torch

    folder = tmp_path_factory.mktemp("pool40")
    assert main(["pool", "--space", str(space_file), "--count", "40", "--seed", "3",
                 "--out", str(folder / "pool.npz")]) == 0
    assert main(["render-pool", "--space", str(space_file), "--pool", str(folder / "pool.npz"), "--settings",
                 '{"views": 3, "size": 128}', "--seed", "3", "--out-dir", str(folder / "renders")]) == 0
    groups = identities_in(folder / "renders")
    renders = {n: [load_render(p) for p in paths] for n, paths in groups.items()}
    settings = EncoderSettings(epochs=30, batch_size=16, width=8, val_fraction=0.25, patience=0)
    net, report = train_identity_encoder(renders, settings, seed=5, device=torch.device("cpu"), progress=False)
    export_onnx(net, folder / "arcface.onnx")
    return folder / "renders", folder / "arcface.onnx", report


def test_trained_encoder_separates_held_out_identities(learned):
    """On identities it never saw, same-identity pairs are far more similar than different ones (an
    untrained or collapsed network: AUC near 0.5, cosines all near 1)."""
    _, _, report = learned
    held = report["heldout"]
    assert report["identities_heldout"] == 10
    assert held["verification_auc"] >= 0.9, held
    assert held["cosine_same"] > held["cosine_different"] + 0.3, held


def test_augmented_views_are_closest_to_their_own_identity(learned, tmp_path):
    """Each augmented embedding of a held-out identity's image lies closer to that identity's clean
    embeddings than to any other identity's, for >= 95 % of rows (a cache with rows mixed up fails)."""
    renders, onnx, report = learned
    stems = sorted(p.stem for n in report["heldout_names"] for p in renders.glob(f"{n}_*.png"))
    out = tmp_path / "cache.npz"
    assert main(["embed", "--encoder", str(onnx), "--renders-dir", str(renders), "--stems", *stems,
                 "--augmentations", "4", "--seed", "2", "--device", "cpu", "--out", str(out)]) == 0
    cache = dict(np.load(out))
    identity = np.array([s.rsplit("_", 1)[0] for s in cache["stem"]])
    cos = np.einsum("nvd,md->nvm", cache["augmented"], cache["clean"])  # (rows, views, clean rows)
    same = identity[:, None] == identity[None, :]
    own = np.where(same[:, None, :], cos, -np.inf).max(axis=2)
    other = np.where(~same[:, None, :], cos, -np.inf).max(axis=2)
    assert (own > other).mean() >= 0.95, (own > other).mean()


@pytest.fixture(scope="session")
def trained(pool_renders):
    import torch

    groups = identities_in(pool_renders)
    renders = {n: [load_render(p) for p in paths] for n, paths in groups.items()}
    settings = EncoderSettings(epochs=3, batch_size=8, width=8, val_fraction=0.25)
    net, report = train_identity_encoder(renders, settings, seed=5, device=torch.device("cpu"), progress=False)
    return renders, settings, net, report


def test_arcface_margin_only_on_the_true_class():
    import torch

    torch.manual_seed(0)
    e, w = torch.randn(6, 512), torch.randn(4, 512)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    plain = arcface_logits(e, w, y, scale=10.0, margin=0.0)
    with_margin = arcface_logits(e, w, y, scale=10.0, margin=0.3)
    cos = torch.nn.functional.normalize(e) @ torch.nn.functional.normalize(w).T
    assert torch.allclose(plain, 10 * cos, atol=1e-5)
    true = torch.zeros_like(cos, dtype=torch.bool).scatter(1, y[:, None], True)
    assert torch.allclose(with_margin[~true], plain[~true])
    assert (with_margin[true] < plain[true]).all()  # the margin makes the true class harder
    # ArcFace's additive *angular* margin: s * cos(theta + m) on the true class (a CosFace-style
    # s * (cos(theta) - m) or a multiplicative margin gives other values)
    theta = torch.acos(cos[true].clamp(-1, 1))
    assert (theta + 0.3 < torch.pi).all()
    assert torch.allclose(with_margin[true], 10 * torch.cos(theta + 0.3), atol=1e-4)
    assert not torch.allclose(with_margin[true], 10 * (cos[true] - 0.3), atol=1e-2)


def test_crops_and_augmentation(pool_renders):
    image, landmarks = load_render(next(pool_renders.glob("*.png")))
    assert image.shape == (128, 128, 3) and landmarks.shape == (5, 2)
    face = aligned_face(image, landmarks)
    assert face.shape == (112, 112, 3) and face.dtype == np.uint8 and face.mean() > 20
    a = augmented_face(image, landmarks, np.random.default_rng(1))
    b = augmented_face(image, landmarks, np.random.default_rng(1))
    assert np.array_equal(a, b) and not np.array_equal(a, face)
    still = augmented_face(image, landmarks, np.random.default_rng(1), AugmentSettings(0, 0, 0, 0, 0))
    assert np.array_equal(still, face)
    x = to_tensor_batch([face])
    assert x.shape == (1, 3, 112, 112) and -1.0 <= x.min() and x.max() <= 1.0
    assert np.allclose(x[0, 0], (face[:, :, 2] - 127.5) / 127.5)  # RGB from BGR


def test_training_learns_and_is_deterministic(trained):
    import torch

    renders, settings, net, report = trained
    assert report["identities_train"] == 9 and report["identities_heldout"] == 3
    assert len(report["history"]) == 3 and report["history"][-1]["loss"] < report["history"][0]["loss"]
    assert {"cosine_same", "verification_auc", "rank1_identification"} <= set(report["heldout"])
    again, _ = train_identity_encoder(renders, settings, seed=5, device=torch.device("cpu"), progress=False)
    for a, b in zip(net.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_onnx_export_loads_in_insightface_and_matches_torch(trained, tmp_path):
    import torch
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX

    renders, _, net, _ = trained
    path = tmp_path / "arcface.onnx"
    export_onnx(net, path)
    model = load_identity_encoder(path)
    assert isinstance(model, ArcFaceONNX) and model.input_mean == 127.5 and model.input_std == 127.5
    faces = [aligned_face(*r) for r in next(iter(renders.values()))]
    onnx = embed_faces(model, faces)
    with torch.no_grad():
        ref = net(torch.from_numpy(to_tensor_batch(faces))).numpy()
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    assert onnx.shape == (2, 512) and np.allclose(onnx, ref, atol=1e-4)
    assert np.allclose(np.linalg.norm(onnx, axis=1), 1.0, atol=1e-5)
    # the embed rule runs it on one thread (its share of the cores): the embeddings must not change
    one_thread = load_identity_encoder(path, threads=1)
    assert one_thread.session.get_session_options().intra_op_num_threads == 1
    np.testing.assert_array_equal(embed_faces(one_thread, faces * 40), embed_faces(model, faces * 40))


def test_verification_figures():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 16))
    ids = np.repeat(np.arange(5), 3)
    good = verification_figures(centres[ids] + 0.05 * rng.normal(size=(15, 16)), ids)
    assert good["verification_auc"] == 1.0 and good["rank1_identification"] == 1.0
    assert good["cosine_same"] > 0.9 > good["cosine_different"]
    chance = verification_figures(rng.normal(size=(15, 16)), ids)
    assert 0.2 < chance["verification_auc"] < 0.8
    with pytest.raises(FacecoverError, match="two identities"):
        verification_figures(rng.normal(size=(3, 16)), np.zeros(3))


def test_bad_encoder_files_are_named(tmp_path):
    import torch

    with pytest.raises(FacecoverError, match="not found"):
        load_identity_encoder(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(FacecoverError, match="junk.onnx: cannot load"):
        load_identity_encoder(tmp_path / "junk.onnx")
    wrong = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    torch.onnx.export(wrong, torch.zeros(1, 3, 64, 64), str(tmp_path / "small.onnx"), dynamo=False)
    with pytest.raises(FacecoverError, match="small.onnx: not an ArcFace"):
        load_identity_encoder(tmp_path / "small.onnx")


def test_encoder_and_embed_commands(pool_renders, tmp_path):
    onnx, report = tmp_path / "enc/arcface.onnx", tmp_path / "enc/arcface.json"
    settings = json.dumps({"epochs": 1, "batch_size": 8, "width": 8})
    assert main(["encoder", "--renders-dir", str(pool_renders), "--settings", settings, "--seed", "1",
                 "--device", "cpu", "--out", str(onnx), "--report", str(report)]) == 0
    assert json.loads(report.read_text())["trained"] is True
    # arcface.identities: only the first identities of the pool (by name) are trained on
    groups = identities_in(pool_renders)
    assert list(identities_in(pool_renders, 4)) == sorted(groups)[:4]
    limited = json.dumps({"epochs": 1, "batch_size": 8, "width": 8, "identities": 4, "val_fraction": 0})
    assert main(["encoder", "--renders-dir", str(pool_renders), "--settings", limited, "--seed", "1",
                 "--device", "cpu", "--out", str(tmp_path / "lim.onnx"), "--report", str(tmp_path / "lim.json")]) == 0
    lim = json.loads((tmp_path / "lim.json").read_text())
    assert lim["identities_train"] == 4 and lim["images_train"] == sum(len(groups[n]) for n in sorted(groups)[:4])
    # a given ArcFace file is checked and used as is
    copy, copy_report = tmp_path / "given/arcface.onnx", tmp_path / "given/arcface.json"
    assert main(["encoder", "--model", str(onnx), "--out", str(copy), "--report", str(copy_report)]) == 0
    assert copy.read_bytes() == onnx.read_bytes() and json.loads(copy_report.read_text())["trained"] is False
    assert main(["encoder", "--model", str(tmp_path / "nope.onnx"), "--out", str(tmp_path / "x.onnx"),
                 "--report", str(tmp_path / "x.json")]) == 1
    assert not (tmp_path / "x.onnx").exists()

    out = tmp_path / "emb.npz"
    stems = ["pool00000_0", "pool00000_1", "pool00001_0"]
    args = ["embed", "--encoder", str(onnx), "--renders-dir", str(pool_renders), "--stems", *stems,
            "--augmentations", "3", "--seed", "2", "--device", "cpu", "--out", str(out)]
    assert main(args) == 0
    cache = dict(np.load(out))
    assert list(cache["stem"]) == stems
    assert cache["clean"].shape == (3, 512) and cache["augmented"].shape == (3, 3, 512)
    assert np.allclose(np.linalg.norm(cache["augmented"], axis=2), 1.0, atol=1e-5)
    # augmented views stay close to their clean view, and differ from each other
    cos = np.einsum("nd,nvd->nv", cache["clean"], cache["augmented"])
    assert (cos > 0.5).all() and (cos < 0.99999).all()
    first = cache["augmented"].copy()
    assert main(args) == 0
    assert np.array_equal(np.load(out)["augmented"], first)  # same seed, same cache
    assert main(["embed", "--encoder", str(onnx), "--renders-dir", str(tmp_path / "none"), "--seed", "2",
                 "--out", str(tmp_path / "none.npz")]) == 1
