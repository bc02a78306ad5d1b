"""A tiny learning workspace, written as the workflow writes it (shared by the learning and inference tests)."""

import json

import numpy as np
import pandas as pd

from facecover.cli import main


def make_workspace(space, root):
    """A tiny learning workspace written as the workflow writes it: pool meshes and embedding caches,
    registered healthy meshes, scar variants, split. The "encoder" is a fixed random projection of the
    face shape plus noise (enough identity for the learning mechanics; the real encoder is tested apart)."""
    from facecover.cohort import person_rng, person_vertices
    from facecover.files import save_mesh, save_npz
    from facecover.scars import prepare_face, simulate_scars

    rng = np.random.default_rng(5)
    sub = np.arange(0, len(space["vertices"]), 7)
    proj = rng.standard_normal((sub.size * 3, 512)) / np.sqrt(sub.size)

    def embed(v, noise, views):
        e = ((v - space["vertices"])[sub].ravel() @ proj)[None] + rng.normal(0, noise, (views, 512))
        return (e / np.linalg.norm(e, axis=1, keepdims=True)).astype(np.float32)

    names = [f"pool{i:05d}" for i in range(40)]
    pool = np.stack([person_vertices(space, person_rng(2, "pool", n), with_detail=True) for n in names])
    save_npz(root / "pool.npz", vertices=pool.astype(np.float32), names=np.array(names), faces=space["faces"])
    stems, clean, aug = [], [], []
    for n, v in zip(names, pool):
        for view in range(2):
            e = embed(v, 0.5, 4)
            stems.append(f"{n}_{view}"), clean.append(e[0]), aug.append(e[1:])
    save_npz(root / "embeddings" / "pool.npz", stem=np.array(stems), clean=np.stack(clean), augmented=np.stack(aug))
    subjects = [f"subject{i:02d}" for i in range(1, 11)]
    sets = ["train"] * 6 + ["val"] * 2 + ["test"] * 2
    pd.DataFrame({"subject": subjects, "set": sets}).to_csv(root / "splits.csv", index=False)
    for s in subjects:
        healthy = person_vertices(space, person_rng(2, "cohort", s), with_detail=True)
        save_mesh(root / "registered" / f"{s}.ply", healthy, space["faces"])
        save_npz(root / "truth" / f"{s}.npz", vertices=healthy)
        face = prepare_face(healthy, space["faces"], space["regions"])
        stems, clean, aug = [], [], []
        for variant in ("00", "01"):
            scar = simulate_scars(face, person_rng(2, "scars", f"{s}/{variant}"))
            save_mesh(root / "scars" / s / f"{variant}.ply", scar["vertices"], space["faces"])
            save_npz(root / "scars" / s / f"{variant}.npz", mask=scar["mask"], region=scar["region"])
            for view in range(2):
                e = embed(scar["vertices"], 0.5, 4)
                stems.append(f"{variant}_{view}"), clean.append(e[0]), aug.append(e[1:])
        save_npz(root / "embeddings" / f"{s}.npz", stem=np.array(stems), clean=np.stack(clean),
                 augmented=np.stack(aug))
    return root


REGION_WEIGHTS = json.dumps({"other": 1.0, "forehead": 150.0, "nose": 150.0, "cheek_left": 150.0,
                             "cheek_right": 150.0, "mouth": 150.0, "chin": 150.0, "eyes": 150.0})


def run_learning(root, space_file, out):
    """decoder -> base -> swav 0.5 -> finetune nossl + ssl50 -> evaluate -> table, as the workflow runs them."""
    out.mkdir(parents=True, exist_ok=True)
    common = ["--seed", "3", "--device", "cpu", "--threads", "1"]
    assert main(["decoder", "--space", str(space_file), "--pool", str(root / "pool.npz"), "--components", "20",
                 "--out", str(out / "decoder.npz"), "--report", str(out / "decoder.json")]) == 0
    assert main(["base", "--space", str(space_file), "--decoder", str(out / "decoder.npz"), "--pool",
                 str(root / "pool.npz"), "--embeddings", str(root / "embeddings" / "pool.npz"), "--settings",
                 '{"epochs": 2, "batch_size": 32, "val_fraction": 0.2}', "--region-weights", REGION_WEIGHTS,
                 *common, "--out", str(out / "base.pt"), "--log", str(out / "base.csv")]) == 0
    assert main(["swav", "--base", str(out / "base.pt"), "--split", str(root / "splits.csv"), "--embeddings-dir",
                 str(root / "embeddings"), "--fraction", "0.5", "--settings",
                 '{"epochs": 3, "batch_size": 8, "prototypes": 4}', *common, "--out", str(out / "swav_0.5.pt"),
                 "--log", str(out / "swav_0.5.csv")]) == 0
    tables = []
    for experiment, extra in (("nossl", []), ("ssl50", ["--swav", str(out / "swav_0.5.pt"), "--pool",
                                                         str(root / "pool.npz"), "--pool-embeddings",
                                                         str(root / "embeddings" / "pool.npz")])):
        assert main(["finetune", "--experiment", experiment, "--space", str(space_file), "--decoder",
                     str(out / "decoder.npz"), "--base", str(out / "base.pt"), *extra, "--split",
                     str(root / "splits.csv"), "--embeddings-dir", str(root / "embeddings"), "--registered-dir",
                     str(root / "registered"), "--settings", '{"epochs": 2, "batch_size": 16}', "--region-weights",
                     REGION_WEIGHTS, *common, "--out", str(out / f"recon_{experiment}.pt"), "--log",
                     str(out / f"{experiment}.csv")]) == 0
    for method, ckpt in (("nossl", out / "recon_nossl.pt"), ("ssl50", out / "recon_ssl50.pt"), ("mean", None),
                         ("injured", None), ("completion", None)):
        assert main(["evaluate", "--method", method, *(["--checkpoint", str(ckpt)] if ckpt else []), "--space",
                     str(space_file), "--decoder", str(out / "decoder.npz"), "--split", str(root / "splits.csv"),
                     "--embeddings-dir", str(root / "embeddings"), "--registered-dir", str(root / "registered"),
                     "--scars-dir", str(root / "scars"), "--truth-dir", str(root / "truth"), "--out",
                     str(out / f"{method}_test.csv")]) == 0
        tables.append(str(out / f"{method}_test.csv"))
    assert main(["table", "--results", *tables, "--out", str(out / "table.csv")]) == 0
    return out


