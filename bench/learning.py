"""Benchmark: the learning stages on the default run's results.

Prints, measured in this run on the data of `results/` (run `make run` first):

* wall time per epoch of the base model (pool), SwAV (100 % of the training subjects) and fine-tuning;
* one fine-tuning epoch from the embedding cache vs the same epoch recomputing every embedding with the
  encoder (load the render, align/augment the crop, run the ArcFace ONNX) — the cache's speed-up
  (the paper: ~30 min first epoch vs ~90 s later ones);
* the learning stages' and the whole workflow's wall time, from Snakemake's benchmark records of the run
  that made `results/` (results/benchmarks/...).

    .venv/bin/python bench/learning.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from facecover.cohort import person_rng
from facecover.encoder import (AugmentSettings, aligned_face, augmented_face, embed_faces, load_identity_encoder,
                               load_render)
from facecover.files import load_mesh, load_npz
from facecover.learn.data import (all_views, cohort_samples, fraction_of_subjects, load_embeddings, pool_samples,
                                  read_split, region_vertex_weights, subjects_in)
from facecover.learn.decoder import load_decoder
from facecover.learn.network import load_mapping
from facecover.learn.swav import SwavSettings, pretrain_trunk
from facecover.learn.train import TrainSettings, train_mapping
from stages import settings

R = Path("results")
LEARNING_RULES = ("decoder", "base", "swav", "finetune", "fit_noise", "evaluate_experiment", "evaluate_experiment_fit",
                  "evaluate_baseline", "metrics_table", "learning_report")


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def fmt(times: list[float]) -> str:
    return f"{np.median(times):7.2f} s (median of {len(times)}: {', '.join(f'{t:.2f}' for t in times)})"


def pool_scaling(config: dict, space: dict, decoder: dict, weights: np.ndarray, sizes: list[int]) -> None:
    """Image-only accuracy on the test subjects against the number of pool identities the base model learns
    from: extra identities (same shape space, seeded) are rendered and embedded with the run's encoder, the
    closed-form base model is fitted on the first N, and scored like the `nossl` row (no fine-tuning)."""
    import subprocess
    import sys
    import tempfile

    from facecover.learn.decoder import decode
    from facecover.learn.evaluate import align_outside_wound, region_masks
    from facecover.learn.network import mapping_network
    from facecover.learn.train import linear_start, predict_coefficients

    facecover = str(Path(sys.executable).parent / "facecover")
    n_max = max(sizes)
    render = settings(config, "render")
    augment = settings(config, "embed", "augmentations")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        for cmd in (["pool", "--space", str(R / "model/face_space.npz"), "--count", str(n_max), "--seed",
                     str(config["seed"] + 1000), "--out", f"{tmp}/pool.npz"],
                    ["render-pool", "--space", str(R / "model/face_space.npz"), "--pool", f"{tmp}/pool.npz",
                     "--settings", render, "--seed", str(config["seed"]), "--out-dir", f"{tmp}/renders"],
                    ["embed", "--encoder", str(R / "encoder/arcface.onnx"), "--renders-dir", f"{tmp}/renders",
                     "--augmentations", str(config["embed"]["augmentations"]), "--augment", augment, "--seed",
                     str(config["seed"]), "--out", f"{tmp}/pool_embeddings.npz"]):
            subprocess.run([facecover, *cmd], check=True, capture_output=True)
        pool = load_npz(f"{tmp}/pool.npz")
        X, y = pool_samples(load_embeddings(f"{tmp}/pool_embeddings.npz"), pool["names"])
    print(f"\npool-size scaling ({n_max} extra identities rendered and embedded in {time.perf_counter() - t0:.0f} s; "
          f"closed-form base model, image only, {len(subjects_in(read_split(R / 'splits.csv'), 'test'))} test subjects):")
    masks = region_masks(space["regions"], space["region_names"])
    test = subjects_in(read_split(R / "splits.csv"), "test")
    cases = []
    for s in test:
        cache = load_embeddings(R / f"embeddings/{s}.npz")
        healthy = np.asarray(load_mesh(R / f"registered/{s}.ply").vertices)
        for e, stem in zip(cache["clean"], cache["stem"]):
            variant = str(stem).rsplit("_", 1)[0]
            wound = load_npz(R / f"scars/{s}/{variant}.npz")["mask"].astype(bool)
            cases.append((e, healthy, np.asarray(load_mesh(R / f"scars/{s}/{variant}.ply").vertices), wound))
    for n in sizes:
        n_val = max(1, n // 10)
        train, val = (y >= n_val) & (y < n), y < n_val
        net = mapping_network(len(decoder["basis"]))
        linear_start(net, decoder, weights, (X[train], y[train], pool["vertices"]), (X[val], y[val], pool["vertices"]))
        z = predict_coefficients(net, np.stack([c[0] for c in cases]))
        face, wound = [], []
        for zi, (_, healthy, injured, mask) in zip(z, cases):
            err = np.linalg.norm(align_outside_wound(decode(decoder, zi), injured, mask) - healthy, axis=1)
            face.append(err[masks["face"]].mean())
            wound.append(err[mask].mean())
        print(f"  {n:5d} identities: face MAE {np.mean(face):.3f} mm, wound MAE {np.mean(wound):.3f} mm")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--r50-crops", type=int, default=96, help="crops timed through the IResNet-50-sized encoder")
    ap.add_argument("--pool-scaling", type=int, nargs="*", metavar="N",
                    help="also: image-only accuracy with a base model learnt from N pool identities (e.g. 300 600 1200)")
    args = ap.parse_args()
    if not (R / "metrics/table.csv").exists():
        raise SystemExit("bench/learning.py reads the default run's results: run `make run` first")
    torch.set_num_threads(2)
    config = yaml.safe_load(Path("config.yaml").read_text())
    space = load_npz(R / "model/face_space.npz")
    decoder = load_decoder(R / "model/decoder.npz", len(space["vertices"]))
    weights = region_vertex_weights(space["regions"], space["region_names"], config["region_weights"])
    device = torch.device("cpu")
    split = read_split(R / "splits.csv")
    train, val = subjects_in(split, "train"), subjects_in(split, "val")
    caches = {s: load_embeddings(R / f"embeddings/{s}.npz") for s in train + val}
    healthy = {s: np.asarray(load_mesh(R / f"registered/{s}.ply").vertices) for s in train + val}
    base, _ = load_mapping(R / "checkpoints/base.pt")
    print(f"data: {len(train)} training / {len(val)} validation subjects, "
          f"{sum(len(caches[s]['stem']) for s in train)} training renders x "
          f"{1 + caches[train[0]]['augmented'].shape[1]} cached views; pool {config['cohort']['pool_size']} identities")

    # base model: one epoch on the pool
    pool = load_npz(R / "pool/identities.npz")
    X, y = pool_samples(load_embeddings(R / "embeddings/pool.npz"), pool["names"])
    held = (np.arange(len(pool["names"])) % 10 == 0)[y]
    net, _ = load_mapping(R / "checkpoints/base.pt")
    one = TrainSettings(1, config["base"]["batch_size"], config["base"]["learning_rate"])
    base_epoch = timed(lambda: train_mapping(net, decoder, weights, (X[~held], y[~held], pool["vertices"]),
                                             (X[held], y[held], pool["vertices"]), one, 0, device, progress=False),
                       args.repeats)
    print(f"base model, one epoch ({(~held).sum()} samples):          {fmt(base_epoch)}")

    # SwAV: one epoch on 100 % of the training subjects
    swav = SwavSettings(**{k: v for k, v in config["swav"].items() if k != "fractions"} | {"epochs": 1})
    chosen = fraction_of_subjects(train, 1.0, config["seed"])
    views = np.concatenate([all_views(caches[s]) for s in chosen])
    swav_epoch = timed(lambda: pretrain_trunk(base, views, swav, 0, device, progress=False), args.repeats)
    print(f"SwAV, one epoch ({len(views)} renders x {views.shape[1]} views):       {fmt(swav_epoch)}")

    # fine-tuning: one epoch from the cache
    ft = TrainSettings(1, config["finetune"]["batch_size"], config["finetune"]["learning_rate"])
    Xc, yc = cohort_samples(caches, train, "all")
    Xv, yv = cohort_samples(caches, val, "clean")
    T = np.stack([healthy[s] for s in train])
    Tv = np.stack([healthy[s] for s in val])

    def epoch_from(Xtrain):
        model, _ = load_mapping(R / "checkpoints/base.pt")
        train_mapping(model, decoder, weights, (Xtrain, yc, T), (Xv, yv, Tv), ft, 0, device, progress=False)

    cached = timed(lambda: epoch_from(Xc), args.repeats)
    print(f"fine-tuning, one epoch from the cache ({len(Xc)} samples): {fmt(cached)}")

    # the same epoch, recomputing every embedding with the encoder (what training without the cache does)
    encoder = load_identity_encoder(R / "encoder/arcface.onnx")
    augment = AugmentSettings(**{k: v for k, v in config["embed"].items() if k != "augmentations"})
    n_aug = caches[train[0]]["augmented"].shape[1]

    def recompute():
        rng = person_rng(0, "bench", "recompute")
        crops = []
        for s in train:
            for stem in caches[s]["stem"]:
                image, landmarks = load_render(R / f"renders/{s}/{stem}.png")
                crops.append(aligned_face(image, landmarks))
                crops += [augmented_face(image, landmarks, rng, augment) for _ in range(n_aug)]
        epoch_from(embed_faces(encoder, crops))

    uncached = timed(recompute, max(1, args.repeats - 1))
    print(f"fine-tuning, one epoch recomputing the embeddings:     {fmt(uncached)}")
    print(f"  -> the cache makes an epoch {np.median(uncached) / np.median(cached):.1f}x faster with the bootstrap "
          f"encoder (target >= 20x)")

    # the same with an encoder of a real ArcFace's size: insightface's w600k_r50 is an IResNet-50 (43 M
    # parameters); its weights cannot be downloaded here, so a randomly initialised network of the same
    # blocks and widths is exported and timed (the time does not depend on the weights) on a share of the
    # epoch's crops. Its stem has stride 2 where IResNet's has 1, so it costs about a quarter of the real
    # network: the ratio printed is a lower bound.
    import tempfile

    from facecover.encoder import export_onnx, identity_network

    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(identity_network(64, blocks=(3, 4, 14, 3)), Path(tmp) / "r50.onnx")
        r50 = load_identity_encoder(Path(tmp) / "r50.onnx")
        crops = [aligned_face(*load_render(R / f"renders/{train[0]}/{stem}.png")) for stem in caches[train[0]]["stem"]]
        crops = (crops * 10)[:args.r50_crops]
        t0 = time.perf_counter()
        embed_faces(r50, crops)
        per_crop = (time.perf_counter() - t0) / len(crops)
    n_crops = len(Xc)
    r50_epoch = np.median(uncached) + n_crops * per_crop  # the bootstrap encoder's share is small; add R50's
    print(f"ArcFace of w600k_r50's size (IResNet-50): {1000 * per_crop:.0f} ms per crop ({len(crops)} timed) -> "
          f"recomputing one epoch's {n_crops} crops ~{r50_epoch:.0f} s, {r50_epoch / np.median(cached):.0f}x the "
          f"cached epoch (a lower bound)")

    if args.pool_scaling:
        pool_scaling(config, space, decoder, weights, args.pool_scaling)

    bench = sorted((R / "benchmarks").glob("*/*.tsv"))
    if bench:
        rows = pd.DataFrame([{"rule": p.parent.name, "s": pd.read_csv(p, sep="\t")["s"].iloc[-1]} for p in bench])
        learning = rows[rows.rule.isin(LEARNING_RULES)]
        print(f"\nfrom the run's benchmark records ({len(rows)} jobs; CPU-time sums, 2 jobs ran at a time):")
        print(f"  learning stages: {learning.s.sum() / 60:.1f} min over {len(learning)} jobs "
              f"({', '.join(f'{r} {t:.0f} s' for r, t in learning.groupby('rule').s.sum().items())})")
        print(f"  all stages:      {rows.s.sum() / 60:.1f} min of job time")


if __name__ == "__main__":
    main()
