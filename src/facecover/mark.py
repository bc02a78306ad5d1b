"""The marking page: mark or correct the wound on the patient's own scan in a browser, save `wound.json`.

One self-contained HTML file (works from file://, no network, no library, no CDN; the WebGL pieces are
shared with the cover view in `viewer.py`). It shows the scan (decimated to at most `max_triangles` for the
browser) with the wound the fit found already marked (red). Left drag paints with a brush (radius in mm,
drawn as a ring on the surface under the pointer), shift + drag or the erase switch erases, right drag (or
alt + drag) rotates, the wheel zooms, double-click resets the view; Undo (or Ctrl-Z) takes back a stroke.
The marked area (mm², the marked vertices' share of their triangles' areas) is shown live. **Save**
downloads `wound.json`:

    {"units": "mm", "frame": "scan", "brush_radius_mm": r, "points_mm": [[x, y, z], ...],
     "area_mm2": a, "scan_vertices": n, "scan_bbox_mm": [[xmin, ymin, zmin], [xmax, ymax, zmax]],
     "scale_to_mm": s, "page_vertices": m}

`points_mm` are the marked vertices in the scan's own coordinates (its frame and units; × `scale_to_mm`
gives mm — 1 for a scan in mm, the usual case; `units` says "mm" then), so the mark does not depend on the
template; the brush radius and the area are in mm whatever the scan's units. Put the file
in the patient's folder (`patients/{id}/wound.json`) and rerun (`marked_wound.py` reads it).

Picking casts the pointer's ray onto the mesh in the page (orthographic view, so a ray is a line along
the view axis): the triangles are binned once into a uniform grid over the view plane of the current view
(rebuilt when the view changes), and only the triangles in the pointer's cell are tested.
"""

from __future__ import annotations

import html
import json

import numpy as np
from scipy.spatial import cKDTree

from .viewer import WEBGL_JS, b64_array, view_frame

MAX_TRIANGLES = 150_000     # the browser gets at most this many triangles of the scan ...
MIN_TRIANGLES = 30_000      # ... and never fewer than this (decimation target floor)
WOUND_REACH_MM = 1.5        # a scan vertex within this of a found-wound point is shown marked

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
 body { margin: 0; font: 13px sans-serif; background: #1e1f22; color: #ddd; overflow: hidden; }
 #bar { position: absolute; left: 8px; top: 6px; line-height: 1.9; background: rgba(30, 31, 34, 0.85); padding: 2px 8px; border-radius: 4px; }
 #bar button { font: inherit; }
 #area { font-weight: bold; color: #ffb0a0; }
 canvas { width: 100vw; height: 100vh; display: block; cursor: crosshair; }
</style></head><body>
<div id="bar"><b>__TITLE__</b> &nbsp; left drag: paint · shift+drag: erase · right or alt+drag: rotate · wheel: zoom ·
double-click: reset view<br>
<label>brush <input type="range" id="radius-slider" min="0.5" max="20" step="0.5"> <input type="number" id="radius"
 min="0.5" max="50" step="0.5" style="width: 4em"> mm</label> &nbsp;
<label><input type="checkbox" id="erase"> erase</label> &nbsp;
<button id="undo" title="Ctrl-Z">Undo</button> <button id="clear">Clear</button> <button id="save">Save wound.json</button>
&nbsp; marked: <span id="area">0 mm²</span> &nbsp; <span id="info"></span></div>
<canvas id="view" oncontextmenu="return false"></canvas>
<script>
"use strict";
const DATA = __DATA__;
__WEBGL_JS__
const canvas = document.getElementById("view");
const gl = canvas.getContext("webgl2", {antialias: true, preserveDrawingBuffer: true});
const info = document.getElementById("info"), areaText = document.getElementById("area");
if (!gl) { info.textContent = "WebGL 2 is not available in this browser"; throw new Error("no WebGL2"); }
const P = f32(DATA.positions), F = u32(DATA.indices), nV = P.length / 3, nF = F.length / 3;
const SCALE = DATA.scale_to_mm;  // scan units -> mm
// vertex normals and each vertex's share of its triangles' area (mm²)
const N = new Float32Array(P.length), vertexArea = new Float64Array(nV);
for (let t = 0; t < nF; t++) {
  const a = 3 * F[3 * t], b = 3 * F[3 * t + 1], c = 3 * F[3 * t + 2];
  const ux = P[b] - P[a], uy = P[b + 1] - P[a + 1], uz = P[b + 2] - P[a + 2];
  const vx = P[c] - P[a], vy = P[c + 1] - P[a + 1], vz = P[c + 2] - P[a + 2];
  const nx = uy * vz - uz * vy, ny = uz * vx - ux * vz, nz = ux * vy - uy * vx;
  for (const i of [a, b, c]) { N[i] += nx; N[i + 1] += ny; N[i + 2] += nz; vertexArea[i / 3] += Math.hypot(nx, ny, nz) / 6 * SCALE * SCALE; }
}
const marked = u8(DATA.marked);
let area = 0; for (let i = 0; i < nV; i++) if (marked[i]) area += vertexArea[i];
const vs = `#version 300 es
in vec3 p; in vec3 n; in float m; uniform mat4 mvp; uniform mat3 nm; out vec3 vn; out vec3 wp; out float vm;
void main() { vn = nm * n; wp = p; vm = m; gl_Position = mvp * vec4(p, 1.0); }`;
const fs = `#version 300 es
precision highp float; in vec3 vn; in vec3 wp; in float vm; uniform vec3 brush; uniform float brushR; uniform float ring;
out vec4 o;
void main() { vec3 nn = normalize(vn); if (!gl_FrontFacing) nn = -nn;
  float d = 0.3 + 0.55 * max(dot(nn, normalize(vec3(0.3, 0.4, 1.0))), 0.0) + 0.25 * max(dot(nn, normalize(vec3(-0.6, 0.2, 0.7))), 0.0);
  vec3 color = mix(vec3(0.82, 0.80, 0.78), vec3(0.90, 0.22, 0.18), step(0.5, vm)) * d;
  float e = abs(distance(wp, brush) - brushR);
  if (brushR > 0.0 && e < ring) color = vec3(0.2, 0.85, 1.0);
  o = vec4(color, 1.0); }`;
const prog = program(gl, vs, fs); gl.useProgram(prog);
const vao = gl.createVertexArray(); gl.bindVertexArray(vao);
function attribute(name, data, size) {
  const buf = gl.createBuffer(); gl.bindBuffer(gl.ARRAY_BUFFER, buf); gl.bufferData(gl.ARRAY_BUFFER, data, gl.STATIC_DRAW);
  const loc = gl.getAttribLocation(prog, name); gl.enableVertexAttribArray(loc); gl.vertexAttribPointer(loc, size, gl.FLOAT, false, 0, 0);
  return buf; }
attribute("p", P, 3); attribute("n", N, 3);
const markF = new Float32Array(nV); for (let i = 0; i < nV; i++) markF[i] = marked[i];
const markBuf = attribute("m", markF, 1);
const ib = gl.createBuffer(); gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, ib); gl.bufferData(gl.ELEMENT_ARRAY_BUFFER, F, gl.STATIC_DRAW);
const U = {}; for (const u of ["mvp", "nm", "brush", "brushR", "ring"]) U[u] = gl.getUniformLocation(prog, u);

let yaw = 0, pitch = 0, zoom = 1, cam = null, grid = null, hover = null, dirty = false;
const radiusIn = document.getElementById("radius"), slider = document.getElementById("radius-slider");
const eraseBox = document.getElementById("erase");
radiusIn.value = slider.value = DATA.brush_radius_mm;
function brushMM() { const r = parseFloat(radiusIn.value); return r > 0 ? r : DATA.brush_radius_mm; }
radiusIn.addEventListener("input", () => { slider.value = radiusIn.value; draw(); });
slider.addEventListener("input", () => { radiusIn.value = slider.value; draw(); });
function showArea() { areaText.textContent = area.toFixed(1) + " mm²"; areaText.dataset.mm2 = area.toFixed(3); }
function reset() { yaw = DATA.yaw; pitch = DATA.pitch; zoom = 1; cam = null; draw(); }
function camera() {
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; cam = null; }
  if (!cam) { cam = orbitCamera(yaw, pitch, zoom, DATA.center, DATA.radius, w, h, DATA.base ? new Float32Array(DATA.base) : null); cam.w = w; cam.h = h; grid = null; }
  return cam; }
function draw() {
  const c = camera(), r = c.rot;
  gl.viewport(0, 0, c.w, c.h); gl.clearColor(0.12, 0.12, 0.13, 1); gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
  gl.enable(gl.DEPTH_TEST);
  gl.uniformMatrix4fv(U.mvp, false, c.mvp);
  gl.uniformMatrix3fv(U.nm, false, new Float32Array([r[0], r[1], r[2], r[4], r[5], r[6], r[8], r[9], r[10]]));
  const rs = brushMM() / SCALE;
  gl.uniform3fv(U.brush, hover ? hover : [0, 0, 0]); gl.uniform1f(U.brushR, hover ? rs : 0);
  gl.uniform1f(U.ring, Math.max(0.04 * rs, 1.5 / (c.scaleX * c.w / 2)));
  if (dirty) { gl.bindBuffer(gl.ARRAY_BUFFER, markBuf); gl.bufferSubData(gl.ARRAY_BUFFER, 0, markF); dirty = false; }
  gl.bindVertexArray(vao); gl.drawElements(gl.TRIANGLES, F.length, gl.UNSIGNED_INT, 0);
}
// view coordinates of every vertex (x, y on screen in pixels, z towards the viewer), for picking
function viewCoords() {
  const c = camera(), r = c.rot, C = DATA.center, V = new Float32Array(P.length);
  for (let i = 0; i < P.length; i += 3) {
    const x = P[i] - C[0], y = P[i + 1] - C[1], z = P[i + 2] - C[2];
    const vx = r[0] * x + r[4] * y + r[8] * z, vy = r[1] * x + r[5] * y + r[9] * z, vz = r[2] * x + r[6] * y + r[10] * z;
    V[i] = (vx * c.scaleX + 1) * c.w / 2; V[i + 1] = (1 - vy * c.scaleY) * c.h / 2; V[i + 2] = vz;
  }
  return V; }
// a uniform grid of cells over the screen, each listing the triangles whose screen box touches it
function buildGrid() {
  const V = viewCoords(), c = camera(), cell = 8, gw = Math.ceil(c.w / cell) + 1, gh = Math.ceil(c.h / cell) + 1;
  const counts = new Uint32Array(gw * gh + 1), boxes = new Int32Array(4 * nF);
  for (let pass = 0; pass < 2; pass++) {
    for (let t = 0; t < nF; t++) {
      let x0, x1, y0, y1;
      if (pass === 0) {
        const a = 3 * F[3 * t], b = 3 * F[3 * t + 1], d = 3 * F[3 * t + 2];
        x0 = Math.max(0, Math.floor(Math.min(V[a], V[b], V[d]) / cell)); x1 = Math.min(gw - 1, Math.floor(Math.max(V[a], V[b], V[d]) / cell));
        y0 = Math.max(0, Math.floor(Math.min(V[a + 1], V[b + 1], V[d + 1]) / cell)); y1 = Math.min(gh - 1, Math.floor(Math.max(V[a + 1], V[b + 1], V[d + 1]) / cell));
        boxes[4 * t] = x0; boxes[4 * t + 1] = x1; boxes[4 * t + 2] = y0; boxes[4 * t + 3] = y1;
      } else { x0 = boxes[4 * t]; x1 = boxes[4 * t + 1]; y0 = boxes[4 * t + 2]; y1 = boxes[4 * t + 3]; }
      for (let gy = y0; gy <= y1; gy++) for (let gx = x0; gx <= x1; gx++) {
        if (pass === 0) counts[gy * gw + gx + 1]++; else grid.items[grid.fill[gy * gw + gx]++] = t; }
    }
    if (pass === 0) {
      for (let k = 1; k < counts.length; k++) counts[k] += counts[k - 1];
      grid = {V: V, cell: cell, gw: gw, gh: gh, start: counts, fill: counts.slice(0, gw * gh), items: new Uint32Array(counts[gw * gh])};
    }
  }
  return grid; }
// the surface point (scan coordinates) under the pixel (px, py), or null: nearest triangle hit by the view ray
function pick(px, py) {
  const g = grid || buildGrid(), V = g.V, gx = Math.floor(px / g.cell), gy = Math.floor(py / g.cell);
  if (gx < 0 || gy < 0 || gx >= g.gw || gy >= g.gh) return null;
  let best = -Infinity, hit = null;
  for (let k = g.start[gy * g.gw + gx], end = g.start[gy * g.gw + gx + 1]; k < end; k++) {
    const t = g.items[k], a = 3 * F[3 * t], b = 3 * F[3 * t + 1], c = 3 * F[3 * t + 2];
    const x1 = V[b] - V[a], y1 = V[b + 1] - V[a + 1], x2 = V[c] - V[a], y2 = V[c + 1] - V[a + 1];
    const det = x1 * y2 - x2 * y1; if (det === 0) continue;
    const qx = px - V[a], qy = py - V[a + 1], u = (qx * y2 - x2 * qy) / det, v = (x1 * qy - qx * y1) / det;
    if (u < 0 || v < 0 || u + v > 1) continue;
    const z = V[a + 2] + u * (V[b + 2] - V[a + 2]) + v * (V[c + 2] - V[a + 2]);
    if (z > best) { best = z; hit = [P[a] + u * (P[b] - P[a]) + v * (P[c] - P[a]), P[a + 1] + u * (P[b + 1] - P[a + 1]) + v * (P[c + 1] - P[a + 1]),
                                 P[a + 2] + u * (P[b + 2] - P[a + 2]) + v * (P[c + 2] - P[a + 2])]; }
  }
  return hit; }
const undoStack = []; let stroke = null;
function paint(point, add) {
  const r = brushMM() / SCALE, r2 = r * r, value = add ? 1 : 0;
  for (let i = 0, j = 0; i < nV; i++, j += 3) {
    if (marked[i] === value) continue;
    const dx = P[j] - point[0], dy = P[j + 1] - point[1], dz = P[j + 2] - point[2];
    if (dx * dx + dy * dy + dz * dz > r2) continue;
    stroke.push(i); marked[i] = value; markF[i] = value; area += add ? vertexArea[i] : -vertexArea[i];
  }
  dirty = true; showArea(); }
function undo() {
  const last = undoStack.pop(); if (!last) return;
  for (const i of last.changed) { marked[i] = last.add ? 0 : 1; markF[i] = marked[i]; area += last.add ? -vertexArea[i] : vertexArea[i]; }
  if (area < 1e-9) area = 0;
  dirty = true; showArea(); draw(); }
function save() {
  const points = [];
  for (let i = 0; i < nV; i++) if (marked[i]) points.push([+P[3 * i].toFixed(4), +P[3 * i + 1].toFixed(4), +P[3 * i + 2].toFixed(4)]);
  const out = {units: SCALE === 1 ? "mm" : "scan units (x scale_to_mm = mm)", frame: "scan", brush_radius_mm: brushMM(), points_mm: points, area_mm2: +area.toFixed(3),
               scan_vertices: DATA.scan_vertices, scan_bbox_mm: DATA.scan_bbox_mm, scale_to_mm: SCALE, page_vertices: nV,
               title: DATA.title};
  const url = URL.createObjectURL(new Blob([JSON.stringify(out)], {type: "application/json"}));
  const a = document.createElement("a"); a.href = url; a.download = "wound.json"; document.body.appendChild(a); a.click();
  setTimeout(() => { URL.revokeObjectURL(url); a.remove(); }, 1000);
  info.textContent = points.length + " marked points saved to wound.json: put it in the patient's folder and rerun"; }
let mode = null, last = null;
canvas.addEventListener("pointerdown", e => {
  canvas.setPointerCapture(e.pointerId); last = [e.clientX, e.clientY];
  if (e.button === 2 || e.altKey) { mode = "rotate"; return; }
  if (e.button !== 0) return;
  const add = !(e.shiftKey || eraseBox.checked);
  mode = add ? "add" : "erase"; stroke = []; undoStack.push({add: add, changed: stroke});
  const hit = pick(e.clientX, e.clientY); hover = hit; if (hit) paint(hit, add); draw(); });
canvas.addEventListener("pointermove", e => {
  if (mode === "rotate") {
    yaw += (e.clientX - last[0]) * 0.01; pitch = Math.max(-1.5, Math.min(1.5, pitch + (e.clientY - last[1]) * 0.01));
    last = [e.clientX, e.clientY]; cam = null; hover = null; draw(); return; }
  const hit = pick(e.clientX, e.clientY); hover = hit;
  if (hit && (mode === "add" || mode === "erase")) paint(hit, mode === "add");
  draw(); });
canvas.addEventListener("pointerup", () => { if (stroke && stroke.length === 0) undoStack.pop(); mode = null; stroke = null; });
canvas.addEventListener("pointerleave", () => { hover = null; draw(); });
canvas.addEventListener("wheel", e => { e.preventDefault(); zoom = Math.max(0.3, Math.min(20, zoom * Math.exp(-e.deltaY * 0.001))); cam = null; draw(); }, {passive: false});
canvas.addEventListener("dblclick", reset);
window.addEventListener("keydown", e => { if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "z") { e.preventDefault(); undo(); } });
window.addEventListener("resize", draw);
document.getElementById("undo").addEventListener("click", undo);
document.getElementById("clear").addEventListener("click", () => {
  stroke = []; undoStack.push({add: false, changed: stroke}); for (let i = 0; i < nV; i++) if (marked[i]) stroke.push(i);
  for (const i of stroke) { marked[i] = 0; markF[i] = 0; } area = 0; stroke = null; dirty = true; showArea(); draw(); });
document.getElementById("save").addEventListener("click", save);
// for tests and scripts: the camera and the picking the page uses
window.marking = {camera: () => { const c = camera(); return {yaw: yaw, pitch: pitch, zoom: zoom, width: c.w, height: c.h,
                  center: DATA.center, radius: DATA.radius}; }, pick: pick, area: () => area, undo: undo, save: save};
info.textContent = DATA.caption;
showArea(); reset();
requestAnimationFrame(() => { gl.finish(); document.body.dataset.ready = "1"; });  // the first frame is drawn
</script></body></html>
"""


def decimated_for_browser(vertices: np.ndarray, faces: np.ndarray, max_triangles: int = MAX_TRIANGLES
                          ) -> tuple[np.ndarray, np.ndarray]:
    """The scan as the browser gets it: unchanged up to `max_triangles`, else quadric-decimated (open3d) to
    that many (never below 30k); vertices stay in the scan's coordinates."""
    vertices, faces = np.asarray(vertices, np.float64), np.asarray(faces, np.int64)
    if len(faces) <= max_triangles:
        return vertices, faces
    import open3d as o3d

    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(vertices), o3d.utility.Vector3iVector(faces))
    small = mesh.simplify_quadric_decimation(target_number_of_triangles=max(MIN_TRIANGLES, int(max_triangles)))
    small.remove_unreferenced_vertices()
    return np.asarray(small.vertices, np.float64), np.asarray(small.triangles, np.int64)


def marking_page_html(scan_vertices: np.ndarray, scan_faces: np.ndarray, wound_points: np.ndarray | None = None,
                      title: str = "mark the wound", scale_to_mm: float = 1.0, brush_radius_mm: float = 3.0,
                      max_triangles: int = MAX_TRIANGLES, wound_reach_mm: float = WOUND_REACH_MM,
                      view_rotation: np.ndarray | None = None, caption: str = "") -> str:
    """The marking page (HTML string) for a scan (vertices in its own coordinates, × `scale_to_mm` = mm;
    faces (m, 3)). `wound_points` (k, 3) in the same coordinates — or a boolean mask over the scan's
    vertices — are shown marked: every page vertex within `wound_reach_mm` (mm) of one. `view_rotation`
    (3, 3) turns the scan to face the viewer (+z) at the start (e.g. the rotation of `scan_to_canonical`)."""
    scan_vertices = np.asarray(scan_vertices, np.float64)
    if wound_points is not None:
        wound_points = np.asarray(wound_points)
        if wound_points.dtype == bool:
            wound_points = scan_vertices[wound_points]
    v, f = decimated_for_browser(scan_vertices, scan_faces, max_triangles)
    marked = np.zeros(len(v), np.uint8)
    if wound_points is not None and len(wound_points):
        reach = wound_reach_mm / scale_to_mm
        marked[np.isfinite(cKDTree(np.asarray(wound_points, np.float64)).query(v, distance_upper_bound=reach)[0])] = 1
    center, radius = view_frame(v)
    base = None
    if view_rotation is not None:
        M = np.eye(4)
        M[:3, :3] = np.asarray(view_rotation, np.float64)[:3, :3]
        base = M.T.ravel().round(6).tolist()  # column-major, as WebGL reads matrices
    data = {"positions": b64_array(v, "<f4"), "indices": b64_array(f, "<u4"), "marked": b64_array(marked, "u1"),
            "center": center, "radius": radius, "scale_to_mm": float(scale_to_mm),
            "brush_radius_mm": float(brush_radius_mm), "yaw": 0.0, "pitch": 0.0, "base": base,
            "scan_vertices": int(len(scan_vertices)),
            "scan_bbox_mm": [scan_vertices.min(axis=0).round(4).tolist(), scan_vertices.max(axis=0).round(4).tolist()],
            "title": title, "caption": caption or f"{len(f)} triangles"
                                                  + (f" (decimated from {len(scan_faces)})" if len(f) < len(scan_faces)
                                                     else "")}
    return (PAGE.replace("__WEBGL_JS__", WEBGL_JS).replace("__TITLE__", html.escape(title))
            .replace("__DATA__", json.dumps(data)))
