"""The marking page (facecover mark): page contents (fast) and a real browser (slow: Debian's chromium and
chromium-driver driven headless by Selenium) painting a stroke, saving wound.json and checking it (mm)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from facecover.mark import marking_page_html
from facecover.meshtools import subdivide, vertex_areas
from facecover.template import load_template_mm

SHOTS = Path(os.environ.get("FACECOVER_MARK_SHOTS", "results/test_screenshots"))


def page_data(page: str) -> dict:
    data, _ = json.JSONDecoder().raw_decode(page, re.search(r"const DATA = ", page).end())
    return data


def posed_face(subdivisions=1):
    """The template face (mm) subdivided, in a 'scan' frame: turned 30° about y and shifted, as a raw scan
    is; returns scan vertices, faces and the scan → canonical 4×4."""
    v, f = load_template_mm()
    for _ in range(subdivisions):
        v, f = subdivide(v, f)
    a = np.radians(30.0)
    R = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    shift = np.array([12.0, -30.0, 450.0])
    scan = v @ R.T + shift                      # canonical -> scan
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R.T, -R.T @ shift     # scan -> canonical
    return scan, f, T



def saved_mark(driver, downloads: Path) -> dict:
    """Click Save on the marking page and read the wound.json it downloads (waits up to 5 s)."""
    driver.find_element("id", "save").click()
    saved = downloads / "wound.json"
    for _ in range(100):
        if saved.exists() and saved.stat().st_size:
            break
        time.sleep(0.05)
    return json.loads(saved.read_text())

def test_page_is_self_contained_and_marks_the_found_wound():
    scan, f, T = posed_face(0)
    wound = np.linalg.norm(scan - scan[100], axis=1) < 8.0
    page = marking_page_html(scan, f, scan[wound], title="p01 <mark>", view_rotation=T[:3, :3])
    assert "<script src" not in page and "http://" not in page and "https://" not in page
    assert "p01 &lt;mark&gt;" in page
    data = page_data(page)
    positions = np.frombuffer(base64.b64decode(data["positions"]), "<f4").reshape(-1, 3)
    marked = np.frombuffer(base64.b64decode(data["marked"]), "u1").astype(bool)
    assert np.allclose(positions, scan, atol=1e-3)
    from scipy.spatial import cKDTree

    assert np.array_equal(marked, cKDTree(scan[wound]).query(scan)[0] <= 1.5)  # within 1.5 mm of the found wound
    assert marked[wound].all()
    assert data["scan_vertices"] == len(scan) and data["scale_to_mm"] == 1.0


def test_large_scans_are_decimated_for_the_browser():
    scan, f, _ = posed_face(2)                  # 224,800 triangles
    page = marking_page_html(scan, f, max_triangles=60_000)
    data = page_data(page)
    n_triangles = len(base64.b64decode(data["indices"])) // 12
    assert 30_000 <= n_triangles <= 60_000
    positions = np.frombuffer(base64.b64decode(data["positions"]), "<f4").reshape(-1, 3)
    from scipy.spatial import cKDTree

    assert cKDTree(scan).query(positions)[0].max() < 2.0  # still the scan's surface, in its coordinates


def test_mark_command_maps_the_found_wound_to_the_scan(tmp_path):
    """`facecover mark`: the wound found over the registered vertices (canonical) shows on the scan."""
    from facecover.cli import main
    from facecover.files import save_json, save_mesh, save_npz

    scan, f, T = posed_face(0)
    canonical = (scan - 0) @ T[:3, :3].T + T[:3, 3]
    wound = np.linalg.norm(canonical - canonical[2000], axis=1) < 10.0
    save_mesh(tmp_path / "scan.ply", scan, f)
    save_mesh(tmp_path / "registered.ply", canonical, f)
    save_json(tmp_path / "registered.json", {"scan_to_canonical": T.tolist(), "scale_to_mm": 1.0})
    save_npz(tmp_path / "wound.npz", wound=wound)
    out = tmp_path / "mark" / "p01.html"
    assert main(["mark", "--scan", str(tmp_path / "scan.ply"), "--registered", str(tmp_path / "registered.ply"),
                 "--registration", str(tmp_path / "registered.json"), "--wound", str(tmp_path / "wound.npz"),
                 "--out", str(out)]) == 0
    marked = np.frombuffer(base64.b64decode(page_data(out.read_text())["marked"]), "u1").astype(bool)
    assert marked[wound].all()
    assert np.linalg.norm(scan[marked] - scan[2000], axis=1).max() < 10.0 + 1.5
    assert main(["mark", "--scan", str(tmp_path / "scan.ply"), "--registration", str(tmp_path / "registered.json"),
                 "--out", str(out)]) == 0
    assert not np.frombuffer(base64.b64decode(page_data(out.read_text())["marked"]), "u1").any()


# ---------------------------------------------------------------- the real browser (slow)

def chromium_driver(download_dir: Path, size=(1100, 800)):
    """Headless Debian chromium through chromedriver, downloads into `download_dir`; skips the test with the
    reason when chromium, chromedriver or selenium are missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not browser or not driver_path:
        pytest.skip("chromium / chromedriver are not installed (apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--enable-unsafe-swiftshader",
                "--use-angle=swiftshader", "--ignore-gpu-blocklist", f"--window-size={size[0]},{size[1]}"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": str(download_dir),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    return driver


def open_page(driver, path: Path, timeout_s: float = 30.0) -> float:
    """Load the page from file:// and wait until it has drawn; seconds from navigation to ready."""
    start = time.perf_counter()
    driver.get(path.resolve().as_uri())
    while driver.execute_script("return document.body && document.body.dataset.ready") != "1":
        if time.perf_counter() - start > timeout_s:
            info = driver.execute_script("return document.getElementById('info').textContent")
            raise AssertionError(f"page not ready after {timeout_s} s: {info}")
        time.sleep(0.02)
    return time.perf_counter() - start


def view_rays(camera: dict, base: np.ndarray, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The page's rays through screen pixels (k, 2): origins and directions in the scan's coordinates,
    from the page's camera (orthographic orbit camera of viewer.WEBGL_JS) computed independently here."""
    cy, sy, cp, sp = np.cos(camera["yaw"]), np.sin(camera["yaw"]), np.cos(camera["pitch"]), np.sin(camera["pitch"])
    orbit = np.array([[cy, 0, sy], [sp * sy, cp, -sp * cy], [-cp * sy, sp, cp * cy]])
    rot = orbit @ base
    w, h = camera["width"], camera["height"]
    s = camera["zoom"] / camera["radius"]
    sx, sy_ = s * min(h / w, 1), s * min(w / h, 1)
    view = np.c_[(2 * pixels[:, 0] / w - 1) / sx, (1 - 2 * pixels[:, 1] / h) / sy_, np.full(len(pixels), 1e3)]
    origins = np.asarray(camera["center"]) + view @ rot   # rotᵀ · v
    return origins, np.tile(rot.T @ [0, 0, -1.0], (len(pixels), 1))


def cast(vertices, faces, origins, directions):
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(vertices.astype(np.float32)), o3d.core.Tensor(faces.astype(np.uint32)))
    rays = o3d.core.Tensor(np.c_[origins, directions].astype(np.float32))
    t = scene.cast_rays(rays)["t_hit"].numpy()
    return origins + t[:, None] * directions, scene


@pytest.mark.slow
def test_paint_a_stroke_in_chromium_and_save(tmp_path):
    """Paint a stroke with pointer events on the scan in headless chromium, Save: wound.json's points lie on
    the scan (≤ 1 mm) within the brush radius of the ray hits under the stroke, the stroke is covered, and the
    area shown matches the file's (and one computed here from its points) within 10 %. Ctrl-Z takes the stroke
    back; shift + drag erases; the Undo button takes the erasing back."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.mouse_button import MouseButton

    scan, f, T = posed_face(1)
    page = tmp_path / "mark.html"
    page.write_text(marking_page_html(scan, f, title="synthetic scan: mark the wound", brush_radius_mm=4.0,
                                      view_rotation=T[:3, :3]))
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = chromium_driver(downloads)
    try:
        open_page(driver, page)
        assert driver.execute_script("return window.marking.area()") == 0
        camera = driver.execute_script("return window.marking.camera()")
        w, h = camera["width"], camera["height"]
        # a stroke across the left cheek, 3 px steps
        stroke = np.array([(w * 0.5 + dx, h * 0.56 + 0.3 * dx) for dx in np.arange(-150.0, -40.0, 3.0)])
        actions = ActionBuilder(driver)
        actions.pointer_action.move_to_location(int(stroke[0, 0]), int(stroke[0, 1])).pointer_down(MouseButton.LEFT)
        for x, y in stroke[1:]:
            actions.pointer_action.move_to_location(int(x), int(y))
        actions.pointer_action.pointer_up(MouseButton.LEFT)
        actions.perform()
        shown = float(driver.find_element("id", "area").get_attribute("data-mm2"))
        SHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SHOTS / "mark_page.png"))
        mark = saved_mark(driver, downloads)
        ActionChains(driver).key_down("\ue009").send_keys("z").key_up("\ue009").perform()  # Ctrl-Z
        assert driver.execute_script("return window.marking.area()") == pytest.approx(0.0, abs=1e-6)
        # paint the stroke again, erase its second half with shift + drag, then Undo (the button) the erasing
        for erase, part in ((False, stroke), (True, stroke[len(stroke) // 2:])):
            actions = ActionBuilder(driver)
            if erase:
                actions.key_action.key_down("\ue008")  # shift
            actions.pointer_action.move_to_location(int(part[0, 0]), int(part[0, 1])).pointer_down(MouseButton.LEFT)
            for x, y in part[1:]:
                actions.pointer_action.move_to_location(int(x), int(y))
            actions.pointer_action.pointer_up(MouseButton.LEFT)
            if erase:
                actions.key_action.key_up("\ue008")
            actions.perform()
            if not erase:
                assert driver.execute_script("return window.marking.area()") == pytest.approx(shown, rel=1e-6)
        erased = driver.execute_script("return window.marking.area()")
        assert 0.2 * shown < erased < 0.8 * shown
        driver.find_element("id", "undo").click()
        assert driver.execute_script("return window.marking.area()") == pytest.approx(shown, rel=1e-6)
    finally:
        driver.quit()

    assert mark["units"] == "mm" and mark["frame"] == "scan" and mark["brush_radius_mm"] == 4.0
    assert mark["scan_vertices"] == len(scan)
    points = np.asarray(mark["points_mm"])
    assert len(points) > 50
    origins, directions = view_rays(camera, T[:3, :3], stroke.astype(int).astype(float))
    hits, scene = cast(scan, f, origins, directions)
    assert np.isfinite(hits).all()  # the stroke lies on the face
    import open3d as o3d

    on_surface = scene.compute_distance(o3d.core.Tensor(points.astype(np.float32))).numpy()
    assert on_surface.max() <= 1.0
    from scipy.spatial import cKDTree

    to_stroke = cKDTree(hits).query(points)[0]
    assert to_stroke.max() <= 4.0 + 0.05
    assert cKDTree(points).query(hits)[0].max() < 1.5  # every point of the stroke is marked
    gap, ids = cKDTree(scan).query(points)
    assert gap.max() < 1e-3  # the saved points are the scan's own vertices (no decimation here)
    area_here = vertex_areas(scan, f)[ids].sum()
    assert mark["area_mm2"] == pytest.approx(shown, rel=0.10)
    assert area_here == pytest.approx(shown, rel=0.10)


def test_open_prints_the_path_without_a_display(tmp_path, monkeypatch, capsys):
    from facecover.cli import main
    from facecover.files import save_json, save_mesh

    scan, f, T = posed_face(0)
    save_mesh(tmp_path / "scan.ply", scan, f)
    save_json(tmp_path / "registered.json", {"scan_to_canonical": T.tolist(), "scale_to_mm": 1.0})
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    opened = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url))
    out = tmp_path / "p01.html"
    assert main(["mark", "--scan", str(tmp_path / "scan.ply"), "--registration", str(tmp_path / "registered.json"),
                 "--out", str(out), "--open"]) == 0
    assert capsys.readouterr().out.strip() == str(out.resolve()) and not opened
    monkeypatch.setenv("DISPLAY", ":0")
    assert main(["mark", "--scan", str(tmp_path / "scan.ply"), "--registration", str(tmp_path / "registered.json"),
                 "--out", str(out), "--open"]) == 0
    assert opened == [out.resolve().as_uri()]


def test_mark_names_a_bad_registration_report(tmp_path, capsys):
    from facecover.cli import main
    from facecover.files import save_mesh

    scan, f, _ = posed_face(0)
    save_mesh(tmp_path / "scan.ply", scan, f)
    (tmp_path / "registered.json").write_text("{}")
    assert main(["mark", "--scan", str(tmp_path / "scan.ply"), "--registration", str(tmp_path / "registered.json"),
                 "--out", str(tmp_path / "p.html")]) == 1
    assert "registered.json: not an ingest report" in capsys.readouterr().err
    assert not (tmp_path / "p.html").exists()


@pytest.mark.slow
def test_a_large_scan_page_is_small_and_opens_fast(tmp_path):
    """A 450k-vertex scan (the template subdivided three times, 0.1 mm noise; the issue asks for 300k): the
    page is ≤ 15 MB, opens (first frame drawn) in ≤ 3 s in headless chromium, and a dab of the brush on the
    decimated page saves points within 1 mm of the full scan."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.mouse_button import MouseButton

    from facecover.meshtools import vertex_normals

    scan, f, T = posed_face(3)
    assert len(scan) >= 300_000
    scan = scan + np.random.default_rng(1).normal(0.0, 0.1, len(scan))[:, None] * vertex_normals(scan, f)  # noise
    page = tmp_path / "large.html"
    page.write_text(marking_page_html(scan, f, title="large scan", view_rotation=T[:3, :3]))
    size_mb = page.stat().st_size / 1e6
    assert size_mb <= 15.0
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = chromium_driver(downloads)
    try:
        # the median of three loads (a single one swings with whatever else the machine is doing)
        seconds = sorted(open_page(driver, page) for _ in range(3))[1]
        camera = driver.execute_script("return window.marking.camera()")
        x, y = int(camera["width"] * 0.6), int(camera["height"] * 0.45)
        actions = ActionBuilder(driver)
        actions.pointer_action.move_to_location(x, y).pointer_down(MouseButton.LEFT).pointer_up(MouseButton.LEFT)
        actions.perform()
        mark = saved_mark(driver, downloads)
    finally:
        driver.quit()
    print(f"large scan page: {size_mb:.1f} MB, opened in {seconds:.2f} s")
    assert seconds <= 3.0  # 0.3-1.1 s on an idle machine; 3.2 s measured once with both cores busy elsewhere
    points = np.asarray(mark["points_mm"])
    assert len(points) > 10 and mark["scan_vertices"] == len(scan) and mark["page_vertices"] < len(scan)
    origins, directions = view_rays(camera, T[:3, :3], np.array([[x, y]], float))
    hit, scene = cast(scan, f, origins, directions)
    import open3d as o3d

    assert scene.compute_distance(o3d.core.Tensor(points.astype(np.float32))).numpy().max() <= 1.0
    assert np.linalg.norm(points - hit, axis=1).max() <= mark["brush_radius_mm"] + 1.0
