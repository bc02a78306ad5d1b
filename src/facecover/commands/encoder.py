"""`facecover` subcommands: The identity encoder and the embedding cache (rules in workflow/rules/encoder.smk)."""

from __future__ import annotations

from pathlib import Path

from .. import FacecoverError
from . import settings_from_json


def cmd_encoder(args) -> None:
    import dataclasses
    import shutil

    from ..device import select_device
    from ..encoder import (
        AugmentSettings,
        EncoderSettings,
        export_onnx,
        identities_in,
        load_identity_encoder,
        load_render,
        train_identity_encoder,
    )
    from ..files import atomic_path, save_json

    if args.model:  # a real ArcFace (e.g. insightface w600k_r50.onnx): checked, then used as is
        load_identity_encoder(args.model)
        with atomic_path(args.out) as tmp:
            shutil.copyfile(args.model, tmp)
        save_json(args.report, {"source": str(Path(args.model).resolve()), "trained": False})
        return
    if not args.renders_dir:
        raise FacecoverError("give --model (an ArcFace ONNX file) or --renders-dir (pool renders to train on)")
    settings = dataclasses.replace(settings_from_json(EncoderSettings, args.settings),
                                   augment=settings_from_json(AugmentSettings, args.augment))
    groups = identities_in(args.renders_dir, settings.identities)
    renders = {name: [load_render(p) for p in paths] for name, paths in groups.items()}
    import torch

    # the trained weights depend on torch's CPU thread count (a convolution's sums run in another order),
    # so it is a setting, not the machine's core count: the same --threads gives the same encoder anywhere
    torch.set_num_threads(max(1, args.threads))
    net, report = train_identity_encoder(renders, settings, args.seed, select_device(args.device))
    export_onnx(net, args.out)
    save_json(args.report, {"source": "bootstrap", "trained": True, "renders": str(args.renders_dir), **report})


def cmd_embed(args) -> None:
    from ..seeds import person_rng
    from ..device import onnx_providers
    from ..embed import embed_renders
    from ..encoder import AugmentSettings, load_identity_encoder
    from ..files import save_npz

    model = load_identity_encoder(args.encoder, onnx_providers(args.device), args.threads)
    rng = person_rng(args.seed, "embed", Path(args.renders_dir).name)
    save_npz(args.out, **embed_renders(model, args.renders_dir, args.augmentations,
                                       settings_from_json(AugmentSettings, args.augment), rng, args.stems))



def register(sub) -> None:
    p = sub.add_parser("encoder", help="the frozen ArcFace identity encoder: check a given ONNX or train one")
    p.add_argument("--model", help="an insightface ArcFace ONNX file to use as is")
    p.add_argument("--renders-dir", help="pool renders ({identity}_{view}.png + .json) to train on")
    p.add_argument("--settings", help="JSON object of training settings (config 'arcface' block without 'model')")
    p.add_argument("--augment", help="JSON object of augmentation settings (config 'embed' block)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (torch device for training)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads for training (the weights depend on it; 1 is as fast here)")
    p.add_argument("--out", required=True, help="ONNX file to write")
    p.add_argument("--report", required=True, help="JSON with the training history and held-out verification")
    p.set_defaults(func=cmd_encoder)

    p = sub.add_parser("embed", help="cache ArcFace embeddings of a folder of renders (clean + augmented)")
    p.add_argument("--encoder", required=True)
    p.add_argument("--renders-dir", required=True)
    p.add_argument("--stems", nargs="+", help="renders to embed ({stem}.png); default: all in the folder")
    p.add_argument("--augmentations", type=int, default=4, help="augmented views per render")
    p.add_argument("--augment", help="JSON object of augmentation settings (config 'embed' block)")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (onnxruntime provider)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: one per core)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_embed)
