"""Tables and figures over all subjects, for the workflow report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd


def registration_table(reports: list[str | Path]) -> pd.DataFrame:
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
    return pd.DataFrame(rows).round(4)


def covers_table(reports: list[str | Path]) -> pd.DataFrame:
    """One row per printed cover: parts, volume (mm³), size (mm), print time and filament from the G-code."""
    rows = []
    for path in reports:
        r = json.loads(Path(path).read_text())
        cover = r["cover"]
        size = cover["checks"]["size_mm"]
        gcode = r.get("gcode", {})
        rows.append({
            "subject": Path(path).stem,
            "parts": len(cover["checks"]["part_volumes_mm3"]),
            "volume_mm3": cover["volume_mm3"],
            "size_x_mm": size[0], "size_y_mm": size[1], "size_z_mm": size[2],
            "wall_p5_mm": cover["checks"]["wall_thickness_p5_mm"],
            "print_time": gcode.get("print_time", ""),
            "filament_g": gcode.get("filament_g", np.nan),
        })
    return pd.DataFrame(rows).round(3)


def _figure(figsize: tuple[float, float]):
    """A new (figure, axes) drawn off-screen (matplotlib's Agg backend, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize, dpi=120)


def _save_png(fig, out) -> None:
    """Write a figure atomically as PNG and free it."""
    import matplotlib.pyplot as plt

    from .files import atomic_path

    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def registration_figure(table: pd.DataFrame, out) -> None:
    """Bar chart of per-subject registration error (mm) as PNG."""
    fig, ax = _figure((max(6, 0.3 * len(table)), 3.5))
    x = np.arange(len(table))
    if table["vertex_error_mean_mm"].notna().any():
        ax.bar(x - 0.2, table["vertex_error_mean_mm"], 0.4, label="vertex error, mean")
        ax.bar(x + 0.2, table["vertex_error_p95_mm"], 0.4, label="vertex error, 95th pct")
    ax.plot(x, table["surface_distance_mean_mm"], "k.", label="surface distance, mean")
    ax.axhline(1.0, color="r", lw=0.8, ls="--", label="1 mm")
    ax.set_xticks(x, table["subject"], rotation=90, fontsize=7)
    ax.set_ylabel("mm")
    ax.legend(fontsize=7)
    _save_png(fig, out)


def encoder_table(encoder_report: str | Path, embeddings: list[str | Path]) -> pd.DataFrame:
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
    return pd.DataFrame(rows).round(4)


def encoder_figure(encoder_report: str | Path, out) -> None:
    """Training curves of the bootstrap encoder (ArcFace loss, training accuracy per epoch) as PNG."""
    report = json.loads(Path(encoder_report).read_text())
    fig, ax = _figure((6, 3.2))
    history = pd.DataFrame(report.get("history", []))
    if history.empty:
        ax.text(0.5, 0.5, f"given model, not trained here:\n{report.get('source', '')}", ha="center", va="center",
                fontsize=8, transform=ax.transAxes)
    else:
        ax.plot(history["epoch"], history["loss"], "b.-", label="ArcFace loss")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        acc = ax.twinx()
        acc.plot(history["epoch"], history["train_accuracy"], "g.-", label="training accuracy")
        acc.set_ylim(0, 1)
        acc.set_ylabel("accuracy")
        fig.legend(fontsize=7, loc="center right", bbox_to_anchor=(0.85, 0.5))
    _save_png(fig, out)
