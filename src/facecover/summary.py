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


def registration_figure(table: pd.DataFrame, out) -> None:
    """Bar chart of per-subject registration error (mm) as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .files import atomic_path

    fig, ax = plt.subplots(figsize=(max(6, 0.3 * len(table)), 3.5), dpi=120)
    x = np.arange(len(table))
    if table["vertex_error_mean_mm"].notna().any():
        ax.bar(x - 0.2, table["vertex_error_mean_mm"], 0.4, label="vertex error, mean")
        ax.bar(x + 0.2, table["vertex_error_p95_mm"], 0.4, label="vertex error, 95th pct")
    ax.plot(x, table["surface_distance_mean_mm"], "k.", label="surface distance, mean")
    ax.axhline(1.0, color="r", lw=0.8, ls="--", label="1 mm")
    ax.set_xticks(x, table["subject"], rotation=90, fontsize=7)
    ax.set_ylabel("mm")
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
