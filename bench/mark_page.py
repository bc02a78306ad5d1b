"""Benchmark: the marking page (`facecover mark`) for a large scan — page size and how long it takes to open
in headless Chromium (issue 25: a 300k-vertex scan's page opens in ≤ 3 s and is ≤ 15 MB).

The scan is a synthetic raw scan made like the cohort's (`synthetic_scan`: own triangulation, 0.2 mm noise,
holes, random pose), resampled finely enough to hold about 300k vertices. Prints the scan's size, the time to
build the page (decimation included), the page's size, and the time from navigation to the first drawn frame
(median of --repeats loads; Debian's chromium + chromedriver through Selenium, software WebGL).

    .venv/bin/python bench/mark_page.py [--vertices 300000] [--repeats 3] [--out results/benchmarks/mark_page.html]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np


def large_scan(target_vertices: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic raw face scan (mm) with about `target_vertices` vertices."""
    from facecover.cohort import ScanSettings, disk_parameterization, person_rng, person_vertices, synthetic_scan
    from facecover.shape_space import face_space

    space = face_space()
    uv = disk_parameterization(space["vertices"], space["faces"])
    truth = person_vertices(space, person_rng(seed, "cohort", "bench"), with_detail=True)
    spacing = 1.2
    for _ in range(3):  # vertices scale with 1 / spacing²
        v, f, _ = synthetic_scan(truth, space["faces"], uv, person_rng(seed, "scan", "bench"),
                                 ScanSettings(point_spacing_mm=spacing))
        if abs(len(v) - target_vertices) < 0.05 * target_vertices:
            break
        spacing *= np.sqrt(len(v) / target_vertices)
    return v, f


def open_seconds(page: Path, repeats: int) -> list[float]:
    """Seconds from navigation to the page's first drawn frame, `repeats` times, in headless chromium."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--enable-unsafe-swiftshader",
                "--use-angle=swiftshader", "--ignore-gpu-blocklist", "--window-size=1100,800"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    times = []
    try:
        for _ in range(repeats):
            driver.get("about:blank")
            start = time.perf_counter()
            driver.get(page.resolve().as_uri())
            while driver.execute_script("return document.body && document.body.dataset.ready") != "1":
                if time.perf_counter() - start > 60:
                    raise RuntimeError("the page did not open within 60 s")
                time.sleep(0.01)
            times.append(time.perf_counter() - start)
        first_pick = driver.execute_script(
            "const t = performance.now(); window.marking.pick(550, 400); return performance.now() - t;")
        next_pick = driver.execute_script(
            "const t = performance.now(); window.marking.pick(560, 410); return performance.now() - t;")
    finally:
        driver.quit()
    print(f"picking: first {first_pick:.0f} ms (builds the screen grid), then {next_pick:.1f} ms")
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vertices", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="results/benchmarks/mark_page.html")
    args = parser.parse_args()
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        print("needs chromium and chromedriver (apt-get install chromium chromium-driver)", file=sys.stderr)
        return 1
    from facecover.files import atomic_path
    from facecover.mark import marking_page_html

    v, f = large_scan(args.vertices)
    print(f"scan: {len(v)} vertices, {len(f)} triangles")
    start = time.perf_counter()
    wound = np.linalg.norm(v - v[len(v) // 2], axis=1) < 12.0
    page = marking_page_html(v, f, v[wound], title="bench: mark the wound")
    built = time.perf_counter() - start
    with atomic_path(args.out) as tmp:
        tmp.write_text(page)
    size_mb = Path(args.out).stat().st_size / 1e6
    print(f"page: {size_mb:.1f} MB, built in {built:.1f} s (decimation included) -> {args.out}")
    times = open_seconds(Path(args.out), args.repeats)
    print(f"opens in headless chromium: median {np.median(times):.2f} s (runs: "
          f"{', '.join(f'{t:.2f}' for t in times)}); limits: 3 s, 15 MB")
    return 0 if size_mb <= 15 and np.median(times) <= 3 else 1


if __name__ == "__main__":
    sys.exit(main())
