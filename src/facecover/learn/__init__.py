"""The learning half: from a cached ArcFace embedding of one image to the healthy 3D face (mm).

* `decoder` — the linear geometry decoder ``verts = mean + basis @ z`` in template topology;
* `network` — the mapping network (MICA's layout) and its checkpoints;
* `data` — embedding caches, splits, target meshes and per-vertex loss weights;
* `train` — supervised training (the base model on the pool, fine-tuning on the cohort);
* `swav` — SwAV self-supervised pretraining of the mapping network's trunk;
* `evaluate` — reconstructions of the test split scored against the healthy faces, with baselines.

Nothing here runs the encoder: training and evaluation read the embedding cache.
"""
