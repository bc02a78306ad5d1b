"""Tables and figures over all subjects, for the workflow report.

The per-subject summary tables are plain lists of row dicts (written with `write_csv`): their stages
then start without pandas."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only: pandas is imported by the functions that use it
    import pandas as pd

Rows = list[dict]


def rounded(rows: Rows, digits: int) -> Rows:
    """The rows with every finite float rounded to `digits` decimals."""
    return [{k: round(v, digits) if isinstance(v, float) and math.isfinite(v) else v for k, v in r.items()}
            for r in rows]


def write_csv(rows: Rows, path) -> None:
    """Rows (dicts with the same keys) as CSV, atomically; NaN as an empty field (as pandas writes it)."""
    from .files import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else [], lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()})


def registration_table(reports: list[str | Path]) -> Rows:
    """One row per registered scan: vertex error vs truth (when known), surface distance (mm), seconds."""
    rows = []
    for path in reports:
        r = json.loads(Path(path).read_text())
        truth = r.get("truth_vertex_error_mm", {})
        rows.append({
            "subject": Path(path).stem,
            "vertex_error_mean_mm": truth.get("mean", np.nan),
            "vertex_error_p95_mm": truth.get("p95", np.nan),
            "surface_distance_mean_mm": r["residuals"]["mean_surface_distance_mm"],
            "inlier_fraction": r["residuals"]["inlier_fraction"],
            "units_detected": r["units_detected"],
            "seconds": r["seconds"]["with_io"],
        })
    return rounded(rows, 4)


def covers_table(reports: list[str | Path]) -> Rows:
    """One row per printed cover: parts, volume (mm³), size (mm), material, print time and filament from the
    G-code, the pose and the support contact on each side (mm², measured from the G-code or estimated)."""
    rows = []
    for path in reports:
        r = json.loads(Path(path).read_text())
        cover = r["cover"]
        size = cover["checks"]["size_mm"]
        gcode = r.get("gcode", {})
        contact = r.get("support_contact", {})
        rows.append({
            "subject": Path(path).stem,
            "parts": len(cover["checks"]["part_volumes_mm3"]),
            "volume_mm3": cover["volume_mm3"],
            "size_x_mm": size[0], "size_y_mm": size[1], "size_z_mm": size[2],
            "wall_p5_mm": cover["checks"]["wall_thickness_p5_mm"],
            "material": r.get("printer", {}).get("material", "pla"),
            "print_time": gcode.get("print_time", ""),
            "filament_g": gcode.get("filament_g", np.nan),
            "pose": cover.get("pose", {}).get("pose", "as_worn"),
            "support_skin_side_mm2": contact.get("skin_side_mm2", np.nan),
            "support_outer_side_mm2": contact.get("outer_side_mm2", np.nan),
            "support_rim_mm2": contact.get("rim_mm2", np.nan),
            "support_contact": contact.get("source", "").split(":")[0],
        })
    return rounded(rows, 3)


def _figure(figsize: tuple[float, float]):
    """A new (figure, axes) drawn off-screen (matplotlib's Agg backend, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize, dpi=120)


def _save_png(fig, out, tight: bool = True) -> None:
    """Write a figure atomically as PNG and free it."""
    import matplotlib.pyplot as plt

    from .files import atomic_path

    if tight:
        fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def registration_figure(table: Rows, out) -> None:
    """Bar chart of per-subject registration error (mm) as PNG."""
    column = {k: np.array([r[k] for r in table], dtype=float) for k in
              ("vertex_error_mean_mm", "vertex_error_p95_mm", "surface_distance_mean_mm")}
    fig, ax = _figure((max(6, 0.3 * len(table)), 3.5))
    x = np.arange(len(table))
    if np.isfinite(column["vertex_error_mean_mm"]).any():
        ax.bar(x - 0.2, column["vertex_error_mean_mm"], 0.4, label="vertex error, mean")
        ax.bar(x + 0.2, column["vertex_error_p95_mm"], 0.4, label="vertex error, 95th pct")
    ax.plot(x, column["surface_distance_mean_mm"], "k.", label="surface distance, mean")
    ax.axhline(1.0, color="r", lw=0.8, ls="--", label="1 mm")
    ax.set_xticks(x, [r["subject"] for r in table], rotation=90, fontsize=7)
    ax.set_ylabel("mm")
    ax.legend(fontsize=7)
    _save_png(fig, out)


def encoder_table(encoder_report: str | Path, embeddings: list[str | Path]) -> Rows:
    """Identity verification of the encoder: on held-out pool identities (clean faces) and on the
    cohort's injured renders (the embedding cache; one identity per subject across scar variants/views)."""
    from .encoder import verification_figures
    from .files import load_npz

    report = json.loads(Path(encoder_report).read_text())
    rows = []
    if "heldout" in report:
        rows.append({"faces": "pool, held-out identities (clean)", **report["heldout"]})
    clean, names = [], []
    for path in embeddings:
        cache = load_npz(path)
        clean.append(cache["clean"])
        names += [Path(path).stem] * len(cache["clean"])
    if len(set(names)) >= 2:
        rows.append({"faces": "cohort, injured renders", **verification_figures(np.concatenate(clean), np.array(names))})
    return rounded(rows, 4)


def encoder_figure(encoder_report: str | Path, out) -> None:
    """Training curves of the bootstrap encoder as PNG: ArcFace loss, training accuracy and the held-out
    identities' separation (mean cosine same minus different identity; what early stopping watches) per epoch."""
    report = json.loads(Path(encoder_report).read_text())
    fig, ax = _figure((6, 3.8))
    history = report.get("history", [])
    if not history:
        ax.text(0.5, 0.5, f"given model, not trained here:\n{report.get('source', '')}", ha="center", va="center",
                fontsize=8, transform=ax.transAxes)
    else:
        epochs = [h["epoch"] for h in history]
        ax.plot(epochs, [h["loss"] for h in history], "b.-", label="ArcFace loss")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        acc = ax.twinx()
        acc.plot(epochs, [h["train_accuracy"] for h in history], "g.-", label="training accuracy")
        held = [(h["epoch"], h["heldout_separation"]) for h in history if h.get("heldout_separation") is not None]
        if held:
            acc.plot(*zip(*held), "m.-", label="held-out identities: cosine same − different")
        acc.set_ylim(0, 1)
        acc.set_ylabel("accuracy, separation")
        handles = ax.get_legend_handles_labels()[0] + acc.get_legend_handles_labels()[0]
        ax.legend(handles=handles, fontsize=7, loc="upper center", ncol=2, bbox_to_anchor=(0.5, -0.2))
    _save_png(fig, out)


def learning_curves_figure(base_log, swav_logs: dict, finetune_logs: dict, out) -> None:
    """Loss curves: base model (validation), SwAV (per fraction, with ln K), fine-tuning (train/validation)."""
    import pandas as pd

    fig, _ = _figure((13, 3.6))
    fig.clf()
    axes = fig.subplots(1, 3)
    base = pd.read_csv(base_log)
    axes[0].plot(base["epoch"], base["val_loss_mm"], "k.-", label="validation (held-out pool identities)")
    axes[0].plot(base["epoch"], base["train_loss_mm"], "b.-", label="training")
    axes[0].set_title("base model (pool)")
    for name, path in swav_logs.items():
        log = pd.read_csv(path)
        axes[1].plot(log["epoch"], log["loss"], ".-", label=f"SwAV on {float(name):.0%} of the training subjects")
        axes[1].axhline(log["log_prototypes"].iloc[0], color="gray", ls="--", lw=0.8)
    axes[1].text(0.02, 0.95, "dashed: ln K (collapse)", transform=axes[1].transAxes, fontsize=7, va="top")
    axes[1].set_title("SwAV pretraining")
    axes[1].set_ylabel("swapped-prediction loss")
    for name, path in finetune_logs.items():
        log = pd.read_csv(path)
        line = axes[2].plot(log["epoch"], log["val_loss_mm"], ".-", label=f"{name} validation")[0]
        axes[2].plot(log["epoch"], log["train_loss_mm"], ":", color=line.get_color(), label=f"{name} training")
    axes[2].set_title("fine-tuning (cohort)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend(fontsize=6)
    axes[0].set_ylabel("masked L1 (mm)")
    axes[2].set_ylabel("masked L1 (mm)")
    _save_png(fig, out)


def iou_figure(table: pd.DataFrame, out) -> None:
    """Wound IoU per facial region and method (bars), with the paper's 0.84-0.88 band."""
    regions = [c for c in table.columns if c.startswith("iou_")]
    fig, ax = _figure((max(8, 0.9 * len(table)) + 2, 3.6))
    x = np.arange(len(regions))
    width = 0.8 / len(table)
    for i, (_, row) in enumerate(table.iterrows()):
        ax.bar(x + (i - len(table) / 2 + 0.5) * width, row[regions].astype(float), width, label=row["method"])
    ax.axhspan(0.84, 0.88, color="green", alpha=0.15, label="paper (SSL, 100 %)")
    ax.set_xticks(x, [r[4:] for r in regions])
    ax.set_ylim(0, 1)
    ax.set_ylabel("wound IoU")
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _save_png(fig, out)


WOUND_EDGE_RGB = (0.1, 0.35, 0.9)


def error_heatmap_figure(faces: np.ndarray, panels: list[dict], out, vmax_mm: float = 3.0) -> None:
    """Per-vertex error (mm) rendered on the face for each panel {vertices (N, 3), error_mm (N,), title, and
    optionally wound (N,) bool, whose edge is drawn in blue}; one colour bar for all."""
    import matplotlib
    from matplotlib import cm, colors

    from .render import DEFAULT_LIGHTS, Scene, frontal_camera

    norm = colors.Normalize(0.0, vmax_mm)
    cmap = matplotlib.colormaps["YlOrRd"]  # light at 0 mm, so the shading shows the face where it is right
    fig, _ = _figure((2.6 * len(panels) + 1.0, 3.2))
    fig.clf()
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        v = np.asarray(panel["vertices"], np.float64)
        per_face = np.asarray(panel["error_mm"])[faces].mean(axis=1)
        face_colors = cmap(norm(per_face))[:, :3]
        if panel.get("wound") is not None:
            inside = np.asarray(panel["wound"], bool)[faces].sum(axis=1)
            face_colors[(inside > 0) & (inside < 3)] = WOUND_EDGE_RGB
        image = Scene(v, faces).render(frontal_camera(v.mean(axis=0), 200.0, 320), DEFAULT_LIGHTS, ambient=0.35,
                                       face_colors=face_colors)
        ax.imshow(image)
        ax.set_title(panel["title"], fontsize=7)
        ax.axis("off")
    fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=list(axes), fraction=0.03, label="error (mm)")
    _save_png(fig, out, tight=False)


def stage_table(benchmarks: list[str | Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-stage time and memory from Snakemake's benchmark files (results/benchmarks/{rule}/{job}.tsv):
    jobs, wall time (s: total, mean, max), peak memory (max RSS, MB: mean, max). Also the per-job table."""
    import pandas as pd

    rows = []
    for path in benchmarks:
        path = Path(path)
        record = pd.read_csv(path, sep="\t").iloc[-1]
        rss = pd.to_numeric(record.get("max_rss"), errors="coerce")
        rows.append({"stage": path.parent.name, "job": path.stem, "seconds": float(record["s"]),
                     "max_rss_mb": float(rss) if pd.notna(rss) else np.nan})
    jobs = pd.DataFrame(rows)
    if jobs.empty:
        return jobs, jobs
    stages = jobs.groupby("stage").agg(jobs=("job", "size"), seconds_total=("seconds", "sum"),
                                       seconds_mean=("seconds", "mean"), seconds_max=("seconds", "max"),
                                       max_rss_mb_mean=("max_rss_mb", "mean"), max_rss_mb_max=("max_rss_mb", "max"))
    stages = stages.sort_values("seconds_total", ascending=False).reset_index()
    stages["profile_mem_mb"] = profile_mem_mb(stages["max_rss_mb_max"])
    stages["profile_runtime_min"] = profile_runtime_min(stages["seconds_max"])
    return stages.round(2), jobs.round(3)


MEM_HEADROOM, MEM_EXTRA_MB = 1.5, 500  # cluster memory: 1.5x the largest job's peak + 500 MB, in steps of 500 MB
TIME_HEADROOM, TIME_MIN = 5.0, 5  # cluster wall time: 5x the longest job (slower, shared nodes), >= 5 minutes


def profile_mem_mb(max_rss_mb):
    """Cluster `mem_mb` for a stage from its largest measured peak memory (MB)."""
    need = np.nan_to_num(np.asarray(max_rss_mb, float), nan=1000.0) * MEM_HEADROOM + MEM_EXTRA_MB
    return (np.ceil(need / 500.0) * 500).astype(int)


def profile_runtime_min(seconds_max):
    """Cluster `runtime` (minutes) for a stage from its longest measured job (s)."""
    return np.maximum(TIME_MIN, np.ceil(np.asarray(seconds_max, float) * TIME_HEADROOM / 60.0)).astype(int)


def stage_figure(stages: pd.DataFrame, out) -> None:
    """Bar charts of total wall time and peak memory per stage."""
    fig, _ = _figure((12, max(3.5, 0.22 * len(stages) + 1)))
    fig.clf()
    left, right = fig.subplots(1, 2, sharey=True)
    y = np.arange(len(stages))
    left.barh(y, stages["seconds_total"], color="tab:blue", label="all jobs")
    left.barh(y, stages["seconds_max"], color="tab:orange", height=0.4, label="longest job")
    left.set_yticks(y, stages["stage"], fontsize=7)
    left.invert_yaxis()
    left.set_xlabel("wall time (s)")
    left.legend(fontsize=7)
    right.barh(y, stages["max_rss_mb_max"], color="tab:green", label="largest job")
    right.barh(y, stages["max_rss_mb_mean"], color="tab:olive", height=0.4, label="mean job")
    right.set_xlabel("peak memory, max RSS (MB)")
    right.legend(fontsize=7)
    _save_png(fig, out)


def gap_figure(image: np.ndarray, gap_mm: np.ndarray, vmax_mm: float, out, title: str = "") -> None:
    """The gap map: a render of the face coloured by the gap under the cover (`image` (H, W, 3) uint8, drawn
    with `gap_colors`), its colour bar, and the histogram of the gap (mm) over the footprint's vertices."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.cm as cm
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.6), dpi=120)
    left.imshow(image)
    left.set_axis_off()
    left.set_title(title or "gap from the cover's skin side to the skin")
    fig.colorbar(cm.ScalarMappable(Normalize(0, vmax_mm), "viridis"), ax=left, label="gap (mm)", shrink=0.8)
    values = gap_mm[np.isfinite(gap_mm)]
    right.hist(values, bins=40, range=(0, max(vmax_mm, 1e-3)), color="tab:blue")
    right.set_xlabel("gap (mm)")
    right.set_ylabel("skin vertices under the cover")
    if len(values):
        right.set_title(f"median {np.median(values):.2f} mm, 95th percentile {np.percentile(values, 95):.2f} mm")
    _save_png(fig, out)


def gap_colors(gap_mm: np.ndarray, faces: np.ndarray, vmax_mm: float) -> np.ndarray:
    """Face colours (m, 3) in [0, 1]: viridis of the faces' mean gap where all its vertices are under the
    cover, light grey elsewhere."""
    import matplotlib

    per_face = gap_mm[faces].mean(axis=1)
    colors = np.tile([0.85, 0.85, 0.85], (len(faces), 1))
    under = np.isfinite(per_face)
    colors[under] = matplotlib.colormaps["viridis"](np.clip(per_face[under] / max(vmax_mm, 1e-3), 0, 1))[:, :3]
    return colors
