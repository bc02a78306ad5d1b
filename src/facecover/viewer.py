"""An interactive 3D view of a cover on the injured face: one self-contained HTML file (mm).

The page holds the two meshes (base64 float32 positions and normals, uint32
triangle indices) and about a hundred lines of WebGL — no library, no CDN —
so it works offline, also inside the self-contained Snakemake report. Drag to
rotate, wheel (or pinch) to zoom, double-click to reset; a checkbox hides the
face to see the cover's inner side.
"""

from __future__ import annotations

import base64
import html
import json

import numpy as np

from .meshtools import vertex_normals

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
 body { margin: 0; font: 13px sans-serif; background: #1e1f22; color: #ddd; overflow: hidden; }
 #bar { position: absolute; left: 8px; top: 6px; }
 canvas { width: 100vw; height: 100vh; display: block; cursor: grab; }
</style></head><body>
<div id="bar"><b>__TITLE__</b> &nbsp; drag: rotate · wheel: zoom · double-click: reset &nbsp;
<label><input type="checkbox" id="face" checked> injured face</label> &nbsp; <span id="info"></span></div>
<canvas id="view"></canvas>
<script>
"use strict";
const DATA = __DATA__;
__WEBGL_JS__
const canvas = document.getElementById("view");
const gl = canvas.getContext("webgl2", {antialias: true});
const info = document.getElementById("info");
if (!gl) { info.textContent = "WebGL 2 is not available in this browser"; throw new Error("no WebGL2"); }
const vs = `#version 300 es
in vec3 p; in vec3 n; uniform mat4 mvp; uniform mat3 nm; out vec3 vn;
void main() { vn = nm * n; gl_Position = mvp * vec4(p, 1.0); }`;
const fs = `#version 300 es
precision highp float; in vec3 vn; uniform vec3 color; out vec4 o;
void main() { vec3 nn = normalize(vn); if (!gl_FrontFacing) nn = -nn;
  float d = 0.25 + 0.6 * max(dot(nn, normalize(vec3(0.3, 0.4, 1.0))), 0.0) + 0.25 * max(dot(nn, normalize(vec3(-0.6, 0.2, 0.7))), 0.0);
  o = vec4(color * d, 1.0); }`;
const prog = program(gl, vs, fs); gl.useProgram(prog);
const meshes = DATA.meshes.map(m => {
  const vao = gl.createVertexArray(); gl.bindVertexArray(vao);
  for (const [name, key] of [["p", "positions"], ["n", "normals"]]) {
    const buf = gl.createBuffer(); gl.bindBuffer(gl.ARRAY_BUFFER, buf); gl.bufferData(gl.ARRAY_BUFFER, f32(m[key]), gl.STATIC_DRAW);
    const loc = gl.getAttribLocation(prog, name); gl.enableVertexAttribArray(loc); gl.vertexAttribPointer(loc, 3, gl.FLOAT, false, 0, 0);
  }
  const idx = u32(m.indices); const ib = gl.createBuffer(); gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, ib);
  gl.bufferData(gl.ELEMENT_ARRAY_BUFFER, idx, gl.STATIC_DRAW);
  return {vao: vao, count: idx.length, color: m.color, name: m.name};
});
let yaw = 0, pitch = 0, zoom = 1;
function reset() { yaw = 0.35; pitch = 0.15; zoom = 1; draw(); }
function draw() {
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  gl.viewport(0, 0, w, h); gl.clearColor(0.12, 0.12, 0.13, 1); gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
  gl.enable(gl.DEPTH_TEST);
  const {rot, mvp} = orbitCamera(yaw, pitch, zoom, DATA.center, DATA.radius, w, h);
  gl.uniformMatrix4fv(gl.getUniformLocation(prog, "mvp"), false, mvp);
  gl.uniformMatrix3fv(gl.getUniformLocation(prog, "nm"), false, new Float32Array([rot[0], rot[1], rot[2], rot[4], rot[5], rot[6], rot[8], rot[9], rot[10]]));
  const showFace = document.getElementById("face").checked;
  for (const m of meshes) {
    if (m.name === "face" && !showFace) continue;
    gl.uniform3fv(gl.getUniformLocation(prog, "color"), m.color);
    gl.bindVertexArray(m.vao); gl.drawElements(gl.TRIANGLES, m.count, gl.UNSIGNED_INT, 0);
  }
}
let drag = null;
canvas.addEventListener("pointerdown", e => { drag = [e.clientX, e.clientY]; canvas.setPointerCapture(e.pointerId); });
canvas.addEventListener("pointerup", () => { drag = null; });
canvas.addEventListener("pointermove", e => { if (!drag) return;
  yaw += (e.clientX - drag[0]) * 0.01; pitch = Math.max(-1.5, Math.min(1.5, pitch + (e.clientY - drag[1]) * 0.01));
  drag = [e.clientX, e.clientY]; draw(); });
canvas.addEventListener("wheel", e => { e.preventDefault(); zoom = Math.max(0.3, Math.min(20, zoom * Math.exp(-e.deltaY * 0.001))); draw(); }, {passive: false});
canvas.addEventListener("dblclick", reset);
document.getElementById("face").addEventListener("change", draw);
window.addEventListener("resize", draw);
info.textContent = DATA.caption;
reset();
</script></body></html>
"""


# What every WebGL page here shares (the cover view, the marking page of `mark.py`): decoding the base64
# arrays, compiling shaders, and the orbit camera (orthographic; yaw/pitch about the mesh's centre, zoom).
# The camera maps a point p to clip space as  proj · rot · (p − centre): x, y scaled by zoom / radius (and the
# aspect), depth along −z, so the viewer looks along −z of the rotated frame; `base` (optional) turns the
# mesh first (e.g. a scan's own frame to the canonical one, face towards +z).
WEBGL_JS = """function bytes(s) { const b = atob(s); const a = new Uint8Array(b.length); for (let i = 0; i < b.length; i++) a[i] = b.charCodeAt(i); return a.buffer; }
function f32(s) { return new Float32Array(bytes(s)); }
function u32(s) { return new Uint32Array(bytes(s)); }
function u8(s) { return new Uint8Array(bytes(s)); }
function program(gl, vs, fs) {
  function shader(type, src) { const s = gl.createShader(type); gl.shaderSource(s, src); gl.compileShader(s);
    if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s)); return s; }
  const prog = gl.createProgram();
  gl.attachShader(prog, shader(gl.VERTEX_SHADER, vs)); gl.attachShader(prog, shader(gl.FRAGMENT_SHADER, fs));
  gl.linkProgram(prog); return prog; }
function mul(a, b) { const r = new Float32Array(16);
  for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) { let s = 0; for (let k = 0; k < 4; k++) s += a[k * 4 + j] * b[i * 4 + k]; r[i * 4 + j] = s; } return r; }
function orbitCamera(yaw, pitch, zoom, c, radius, w, h, base) {
  const cy = Math.cos(yaw), sy = Math.sin(yaw), cp = Math.cos(pitch), sp = Math.sin(pitch);
  let rot = new Float32Array([cy, sp * sy, -cp * sy, 0,  0, cp, sp, 0,  sy, -sp * cy, cp * cy, 0,  0, 0, 0, 1]);
  if (base) rot = mul(rot, base);  // a rotation (column-major 4×4) turning the mesh to face the viewer first
  const s = zoom / radius, a = h / w, sx = s * Math.min(a, 1), sy2 = s * Math.min(1 / a, 1);
  const proj = new Float32Array([sx, 0, 0, 0,  0, sy2, 0, 0,  0, 0, -s / 4, 0,  0, 0, 0, 1]);
  const shift = new Float32Array([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, -c[0], -c[1], -c[2], 1]);
  return {rot: rot, mvp: mul(proj, mul(rot, shift)), scaleX: sx, scaleY: sy2}; }"""


def b64_array(array: np.ndarray, dtype) -> str:
    """An array as base64 of its bytes in `dtype` (e.g. "<f4", "<u4"), as the pages' f32/u32 decode it."""
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode("ascii")



def view_frame(vertices: np.ndarray) -> tuple[list, float]:
    """The orbit camera's centre (bounding-box centre, mm) and radius (5 % beyond the farthest vertex)."""
    vertices = np.asarray(vertices, np.float64)
    center = (vertices.min(axis=0) + vertices.max(axis=0)) / 2
    return center.round(3).tolist(), 1.05 * float(np.linalg.norm(vertices - center, axis=1).max())


def cover_viewer_html(face_v: np.ndarray, face_f: np.ndarray, cover_v: np.ndarray, cover_f: np.ndarray,
                      title: str, caption: str = "", unobserved_faces: np.ndarray | None = None) -> str:
    """The HTML page (a string) showing the cover (orange) on the injured face (grey); vertices in mm.
    `unobserved_faces` (m,) bool: face triangles a partial scan did not show, drawn dark grey."""
    meshes = []
    face_f = np.asarray(face_f)
    unseen = np.zeros(len(face_f), bool) if unobserved_faces is None else np.asarray(unobserved_faces, bool)
    parts = [("face", face_v, face_f[~unseen], [0.82, 0.82, 0.84])]
    if unseen.any():
        parts.append(("face", face_v, face_f[unseen], [0.42, 0.42, 0.45]))
    for name, v, f, color in (*parts, ("cover", cover_v, cover_f, [0.95, 0.55, 0.15])):
        v = np.asarray(v, np.float64)
        meshes.append({"name": name, "color": color, "positions": b64_array(v, "<f4"),
                       "normals": b64_array(vertex_normals(v, np.asarray(f)), "<f4"), "indices": b64_array(f, "<u4")})
    center, radius = view_frame(face_v)
    data = {"meshes": meshes, "center": center, "radius": radius, "caption": caption}
    return (PAGE.replace("__WEBGL_JS__", WEBGL_JS).replace("__TITLE__", html.escape(title))
            .replace("__DATA__", json.dumps(data)))
