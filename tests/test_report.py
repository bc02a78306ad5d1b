"""What the report shows: the interactive 3D view's embedded meshes and the tables' numbers (mm, s, MB)."""

import base64
import json
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
import trimesh

from facecover.meshtools import vertex_normals
from facecover.summary import covers_table, stage_table, write_csv


class _Page(HTMLParser):
    """The title and the script of an HTML page."""

    def __init__(self):
        super().__init__()
        self.tag, self.title, self.script = None, "", ""

    def handle_starttag(self, tag, attrs):
        self.tag = tag

    def handle_endtag(self, tag):
        self.tag = None

    def handle_data(self, data):
        if self.tag == "title":
            self.title += data
        elif self.tag == "script":
            self.script += data


def view_data(page_text: str) -> tuple[str, dict, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """An interactive view's title, data and meshes (positions, normals, triangles) decoded as its script
    decodes them (base64 → little-endian Float32Array / Uint32Array)."""
    page = _Page()
    page.feed(page_text)
    assert "f32(m[key])" in page.script and "u32(m.indices)" in page.script  # what the script decodes, and how
    data, _ = json.JSONDecoder().raw_decode(page.script, re.search(r"const DATA = ", page.script).end())
    meshes = [(np.frombuffer(base64.b64decode(m["positions"]), "<f4").reshape(-1, 3),
               np.frombuffer(base64.b64decode(m["normals"]), "<f4").reshape(-1, 3),
               np.frombuffer(base64.b64decode(m["indices"]), "<u4").reshape(-1, 3)) for m in data["meshes"]]
    return page.title, data, meshes


def skin_and_cover():
    """A curved sheet of skin (5 × 5 vertices, 80 × 100 mm) and a 20 × 15 × 3 mm box above it."""
    x, y = np.meshgrid(np.linspace(-40.0, 40.0, 5), np.linspace(-50.0, 50.0, 5))
    face_v = np.c_[x.ravel(), y.ravel(), 0.01 * x.ravel() ** 2 + 12.345678]
    i, j = np.meshgrid(np.arange(4), np.arange(4))
    a = (j * 5 + i).ravel()
    face_f = np.r_[np.c_[a, a + 1, a + 6], np.c_[a, a + 6, a + 5]]
    box = trimesh.creation.box(extents=(20.0, 15.0, 3.0))
    return face_v, face_f, np.asarray(box.vertices) + [5.0, -3.0, 15.0], np.asarray(box.faces)


def test_cover_view_embeds_both_meshes_exactly():
    """The page's data gives back the face's and the cover's vertices, triangles and unit normals, and a
    view centred on the face."""
    from facecover.viewer import cover_viewer_html

    face_v, face_f, cover_v, cover_f = skin_and_cover()
    title, data, meshes = view_data(cover_viewer_html(face_v, face_f, cover_v, cover_f, "subject07 <test>",
                                                      "cover 900 mm³"))
    assert title == "subject07 <test>" and data["caption"] == "cover 900 mm³"
    assert [m["name"] for m in data["meshes"]] == ["face", "cover"]
    for (positions, normals, indices), (v, f) in zip(meshes, ((face_v, face_f), (cover_v, cover_f))):
        assert positions.shape == v.shape and indices.shape == f.shape and normals.shape == v.shape
        # float32 rounding: measured at most 3.3e-7 mm here (coordinates up to 50 mm); float64 bytes read as
        # float32 give twice as many values, and garbage
        assert np.abs(positions - v).max() < 1e-5
        assert np.array_equal(indices, f)
        assert np.allclose(normals, vertex_normals(v, f), atol=1e-6)
        assert np.allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-6)
    centre = [0.0, 0.0, 12.345678 + 8.0]  # the face's bounding box: z from 12.35 to 12.35 + 0.01 * 40²
    assert data["center"] == pytest.approx(centre, abs=1e-3)
    assert data["radius"] == pytest.approx(1.05 * np.linalg.norm(face_v - centre, axis=1).max(), rel=1e-9)


def test_preview_command_shows_the_filling_on_the_injured_face(tmp_path):
    """`facecover preview --out-html` (the workflow's report page): the cover drawn is the filling's mesh, the
    face the injured one, and the caption gives the cover's volume (20 × 15 × 3 mm = 900 mm³)."""
    from facecover.cli import main
    from facecover.files import save_mesh

    face_v, face_f, cover_v, cover_f = skin_and_cover()
    save_mesh(tmp_path / "injured.ply", face_v, face_f)
    save_mesh(tmp_path / "filling.ply", cover_v, cover_f)
    assert main(["preview", "--injured", str(tmp_path / "injured.ply"), "--filling", str(tmp_path / "filling.ply"),
                 "--size", "64", "--title", "subject07", "--out", str(tmp_path / "still.png"),
                 "--out-html", str(tmp_path / "view.html")]) == 0
    title, data, meshes = view_data((tmp_path / "view.html").read_text())
    assert title == "subject07" and data["caption"] == "cover 900 mm³, 1 part(s)"
    (face_p, _, face_i), (cover_p, _, cover_i) = meshes
    # float32 in the PLY files and the page: measured at most 3.3e-7 mm from the float64 meshes written
    assert np.abs(face_p - face_v).max() < 1e-5 and np.array_equal(face_i, face_f)
    assert np.abs(cover_p - cover_v).max() < 1e-5 and np.array_equal(cover_i, cover_f)


def test_covers_table_reads_each_report(tmp_path):
    """Two print reports with known numbers: the table holds them, rounded to 3 decimals."""
    reports = []
    for name, parts, volume, size, wall, gcode in (
            ("subject07", 1, 1234.56789, [40.1, 30.2, 5.3], 1.0004, {"print_time": "12m 3s", "filament_g": 1.25}),
            ("subject09", 2, 77.0, [20.0, 60.5, 2.25], 0.9876, {})):
        report = {"cover": {"volume_mm3": volume, "checks": {"part_volumes_mm3": [volume / parts] * parts,
                                                             "size_mm": size, "wall_thickness_p5_mm": wall}},
                  "gcode": gcode}
        reports.append(tmp_path / f"{name}.json")
        reports[-1].write_text(json.dumps(report))
    write_csv(covers_table(reports), tmp_path / "covers.csv")
    table = pd.read_csv(tmp_path / "covers.csv", keep_default_na=False, na_values=[""])
    assert list(table.subject) == ["subject07", "subject09"]
    assert list(table.parts) == [1, 2]
    assert list(table.volume_mm3) == [1234.568, 77.0]
    assert list(zip(table.size_x_mm, table.size_y_mm, table.size_z_mm)) == [(40.1, 30.2, 5.3), (20.0, 60.5, 2.25)]
    assert list(table.wall_p5_mm) == [1.0, 0.988]
    assert table.print_time[0] == "12m 3s" and table.filament_g[0] == 1.25 and np.isnan(table.filament_g[1])


def test_stage_table_sums_and_sizes_the_cluster_jobs(tmp_path):
    """Snakemake benchmark files of two stages, by hand: ingest 4 s / 300 MB and 10 s / 700 MB (its last
    record; an earlier one of 99 s / 800 MB is a repeat that does not count), encoder 120 s with no memory figure."""
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    records = {"ingest/subject01": ["4.0\t0:00:04\t300.0\t900\t250\t260\t0\t1\t90\t3.6"],
               "ingest/subject02": ["99.0\t0:01:39\t800.0\t900\t250\t260\t0\t1\t90\t3.6",
                                    "10.0\t0:00:10\t700.0\t900\t450\t460\t0\t1\t90\t9.0"],
               "encoder/arcface": ["120.0\t0:02:00\t-\t-\t-\t-\t-\t-\t-\t-"]}
    paths = []
    for job, lines in records.items():
        paths.append(tmp_path / f"{job}.tsv")
        paths[-1].parent.mkdir(exist_ok=True)
        paths[-1].write_text(header + "\n".join(lines) + "\n")
    stages, jobs = stage_table(paths)
    assert list(stages.stage) == ["encoder", "ingest"]  # longest total first
    ingest, encoder = stages.set_index("stage").loc["ingest"], stages.set_index("stage").loc["encoder"]
    assert (ingest.jobs, ingest.seconds_total, ingest.seconds_mean, ingest.seconds_max) == (2, 14.0, 7.0, 10.0)
    assert (ingest.max_rss_mb_mean, ingest.max_rss_mb_max) == (500.0, 700.0)
    # cluster sizes: memory 1.5 × the largest peak + 500 MB in steps of 500 (700 MB -> 1550 -> 2000; the mean
    # job's 500 MB would give 1500; no figure counts as 1000 MB -> 2000), time 5 × the longest job, at least
    # 5 minutes (10 s -> 5, 120 s -> 10)
    assert (ingest.profile_mem_mb, ingest.profile_runtime_min) == (2000, 5)
    assert (encoder.jobs, encoder.seconds_max, encoder.profile_mem_mb, encoder.profile_runtime_min) == \
        (1, 120.0, 2000, 10)
    assert np.isnan(encoder.max_rss_mb_max)
    assert sorted(zip(jobs.job, jobs.seconds)) == [("arcface", 120.0), ("subject01", 4.0), ("subject02", 10.0)]
