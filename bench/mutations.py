"""Mutation checks: the tests that guard a patient's cover must fail when the code they guard is broken.

Each mutant replaces one function with a deliberately broken variant (a half-thickness cover, a 2 px
landmark shift, a scar pushed along x instead of the normal, seeds from Python's per-process `hash()`,
a config check that falls back to the schema dump) in *every* Python process of the test run — pytest
and the `facecover`/`snakemake` commands it starts — through a `sitecustomize` module on PYTHONPATH.
The run first checks that the tests pass unmutated, then that each mutant makes them fail.

By default only the fast tests run (the suite's `-m 'not slow'`). A mutant in code that only the workflow
runs can be caught only by the slow end-to-end test: `SLOW` names the slow tests that guard such mutants,
and `--slow` runs them too (unmutated first, then for each of those mutants the fast tests did not catch;
minutes per run). Without `--slow` a mutant with no fast test is listed as skipped. `--list` prints the
mutants and the pytest commands a run would start, and runs nothing.

    .venv/bin/python bench/mutations.py [--only landmark_shift_2px,cover_half_thickness] [--slow] [--list]
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

GIVEN = "tests/test_infer.py -k 'wound_selected or wound_mask_is or given_wound'"

# mutant: (tests that must catch it, what is broken)
MUTANTS = {
    "cover_half_thickness": ("tests/test_cover_geometry.py", "cover walls built at half the thickness"),
    "cover_thicker": ("tests/test_cover_geometry.py", "cover walls 50 % thicker"),
    "cover_shifted_outer": ("tests/test_cover_geometry.py", "outer surface shifted 0.3 mm up"),
    "landmark_shift_2px": ("tests/test_render.py", "render landmarks shifted 2 px to the right"),
    "landmark_scale_15pct": ("tests/test_render.py", "render landmarks scaled 15 % about the image centre"),
    "scar_along_x": ("tests/test_scars.py", "scars displaced along x instead of the normal"),
    "embedding_rows_swapped": ("tests/test_encoder.py", "augmented rows of the embedding cache shifted by one image"),
    "encoder_untrained": ("tests/test_encoder.py", "the encoder's training loop skipped (learning rate 0)"),
    "arcface_cosface_margin": ("tests/test_encoder.py", "CosFace margin s*(cos(theta) - m) instead of ArcFace's"),
    "flame_branch_off": ("tests/test_covers.py -k flame", "FLAME eyeball handling never recognises a FLAME head"),
    "fit_test_face_unchecked": ("tests/test_covers.py -k print_cli", "the fit-test face is not checked against the bed"),
    "scan_offset_1mm": ("tests/test_cohort.py", "synthetic scans 1 mm off the true surface"),
    "modes_with_translation": ("tests/test_shape_space.py", "a shape mode carrying a rigid translation"),
    "template_scale_5pct": ("tests/test_template.py", "the template 5 % too large"),
    "split_keeps_duplicates": ("tests/test_split.py", "a subject named twice is split twice"),
    "hash_seeded_rng": ("tests/test_determinism.py", "per-person seeds from hash() of strings"),
    "config_schema_dump": ("tests/test_workflow.py::test_bad_config_fails_at_once_naming_the_key",
                           "config errors left to the validator (the schema dump)"),
    # issue 26, round 2
    "iou_union_double": ("tests/test_learn.py -k wound_iou", "wound IoU's union counts the intersection twice"),
    "iou_not_pooled": ("tests/test_learn.py -k wound_iou", "wound IoU the mean of per-image ratios, not pooled"),
    "photo_smallest_face": ("tests/test_photo.py", "the smallest of several faces in a photo is used"),
    "wall_twice_thick": ("tests/test_covers.py -k print_check", "print check measures walls twice as thick"),
    "swav_own_code": ("tests/test_learn.py -k swav", "SwAV predicts each view's own code, not the other views'"),
    "training_idle": ("tests/test_learn.py -k training_beats",
                      "the mapping network's training loop never steps (learning rate 0)"),
    "viewer_float64": ("tests/test_report.py", "the 3D view's meshes written as float64 (the page reads float32)"),
    "stage_memory_from_mean": ("tests/test_report.py",
                               "cluster memory sized from the mean job's peak, not the largest"),
    "wound_seeded_at_grow_threshold": ("tests/test_infer.py -k 'grow_wound or faint'",
                                       "the fit's wound seeded at the grow threshold (faint patches seed)"),
    "given_wound_npz_inverted": (GIVEN, "a user's wound.npz mask read inverted"),
    "given_wound_pose_inverted": (GIVEN, "a user's wound.ply mapped with the inverse of scan_to_canonical"),
    "given_wound_unscaled": (GIVEN, "a user's wound.ply read without the scan's scale_to_mm (cm read as mm)"),
    "infer_ignores_given_wound": (GIVEN, "facecover infer --wound finds the wound itself instead"),
    "mark_pose_inverted": ("tests/test_marked_wound.py", "a wound.json mark mapped with the inverse pose"),
    "mark_unscaled": ("tests/test_marked_wound.py", "a wound.json mark read without the scan's scale_to_mm"),
    "network_memorises_rows": ("tests/test_infer.py -k training_error",
                               "the mapping network reproduces only its training rows (the mean face otherwise)"),
    "ingest_pose_off": ("tests/test_ingest.py -k registration_accuracy",
                        "the ingest report's scan_to_canonical off by 3° and 2 mm (the registered vertices right)"),
    "infer_noise_unread": ("", "facecover infer fits without the measured noise model (uniform noise)"),
    "filling_wound_inverted": ("", "facecover filling reads the wound mask inverted"),
}

# mutant: the slow tests that (also) guard it, run with --slow. A mutant whose only guard is slow has "" as its
# fast tests in MUTANTS.
SLOW: dict[str, str] = {
    "infer_noise_unread": "tests/test_patients.py -k patient_folder",
    "filling_wound_inverted": "tests/test_patients.py -k patient_folder",
    "ingest_pose_off": "tests/test_patients.py -k patient_folder",
}


def patch_source(name: str, module, function: str, old: str, new: str) -> None:
    """Redefine `module.function` from its own source with `old` replaced by `new` (a one-line break in the
    middle of a function); refuses when `old` is no longer in the source (the code changed: update the mutant)."""
    import __future__
    import inspect
    import textwrap

    source = textwrap.dedent(inspect.getsource(getattr(module, function)))
    if old not in source:
        raise SystemExit(f"mutant {name}: {old!r} is no longer in {module.__name__}.{function}; update the mutant")
    code = compile(source.replace(old, new), module.__file__, "exec", flags=__future__.annotations.compiler_flag)
    exec(code, module.__dict__)


def apply(name: str) -> None:
    """Install mutant `name` (called from sitecustomize in every process of a mutation run)."""
    import numpy as np

    if name.startswith("cover_"):
        import facecover.filling as filling

        original = filling.thickened_patch

        def thickened_patch(inner, outer, faces, *args, **kwargs):  # args: edge_radius_mm, arc_segments
            if name == "cover_half_thickness":
                outer = inner + 0.5 * (outer - inner)
            elif name == "cover_thicker":
                outer = inner + 1.5 * (outer - inner)
            else:
                outer = outer + np.array([0.0, 0.0, 0.3])
            return original(inner, outer, faces, *args, **kwargs)

        filling.thickened_patch = thickened_patch
    elif name.startswith("landmark_"):
        import facecover.render as render

        original = render.project

        def project(camera, points):
            px = original(camera, points)
            if name == "landmark_shift_2px":
                return px + np.array([2.0, 0.0])
            centre = np.array([camera.width, camera.height]) / 2.0
            return centre + 1.15 * (px - centre)

        render.project = project
    elif name == "scar_along_x":
        import facecover.scars as scars

        original = scars.simulate_scars

        def simulate_scars(face, rng, *args, **kwargs):
            result = original(face, rng, *args, **kwargs)
            result["vertices"] = face.vertices + result["displacement"][:, None] * np.array([1.0, 0.0, 0.0])
            return result

        scars.simulate_scars = simulate_scars
    elif name == "embedding_rows_swapped":
        import facecover.embed as embed

        original = embed.embed_renders

        def embed_renders(*args, **kwargs):
            cache = original(*args, **kwargs)
            cache["augmented"] = np.roll(cache["augmented"], 1, axis=0)
            return cache

        embed.embed_renders = embed_renders
    elif name == "encoder_untrained":
        import dataclasses

        import facecover.encoder as encoder

        original = encoder.train_identity_encoder

        def train_identity_encoder(renders, settings, *args, **kwargs):
            return original(renders, dataclasses.replace(settings, learning_rate=0.0), *args, **kwargs)

        encoder.train_identity_encoder = train_identity_encoder
    elif name == "arcface_cosface_margin":
        import facecover.encoder as encoder

        def arcface_logits(embeddings, weight, labels, scale, margin):
            import torch.nn.functional as F

            cos = F.linear(F.normalize(embeddings), F.normalize(weight))
            return scale * (cos - margin * F.one_hot(labels, cos.shape[1]))

        encoder.arcface_logits = arcface_logits
    elif name == "flame_branch_off":
        import facecover.watertight as watertight

        watertight.FLAME_VERTICES = -1
    elif name == "fit_test_face_unchecked":
        import facecover.printing as printing

        original = printing.check_printable

        def check_printable(vertices, faces, printer, min_thickness_mm, name="part"):
            if "fit-test face" in name:
                return {"fits_printer": True}
            return original(vertices, faces, printer, min_thickness_mm, name=name)

        printing.check_printable = check_printable
    elif name == "scan_offset_1mm":
        import facecover.cohort as cohort

        original = cohort.synthetic_scan

        def synthetic_scan(*args, **kwargs):
            v, f, pose = original(*args, **kwargs)
            return v + pose[:3, 2], f, pose  # 1 mm along the face's forward axis

        cohort.synthetic_scan = synthetic_scan
    elif name == "modes_with_translation":
        import facecover.shape_space as shape_space

        original = shape_space.face_space

        def face_space(*args, **kwargs):
            space = original(*args, **kwargs)
            basis = space["basis"].copy()
            basis[0] = basis[0] + 0.1 * np.linalg.norm(basis[0]) / np.sqrt(basis[0].size) * np.array([1.0, 0, 0])
            return {**space, "basis": basis}

        shape_space.face_space = face_space
    elif name == "template_scale_5pct":
        import facecover.template as template

        original = template.load_template_mm

        def load_template_mm():
            v, f = original()
            return 1.05 * v, f

        template.load_template_mm = load_template_mm
    elif name == "split_keeps_duplicates":
        import facecover.split as split

        original = split.split_subjects

        def split_subjects(subjects, ratios=(0.6, 0.2, 0.2), seed=0):
            out = original(subjects, ratios, seed)
            return {**out, **{f"{s}_again": out[s] for s in subjects if list(subjects).count(s) > 1}}

        split.split_subjects = split_subjects
    elif name == "hash_seeded_rng":
        # person_rng lives in facecover.seeds (the commands import it from there when they run); cohort holds
        # its own name for it
        import facecover.cohort as cohort
        import facecover.seeds as seeds

        def person_rng(seed, population, name_):
            return np.random.default_rng([int(seed), hash(population) % 2**32, hash(name_) % 2**32])

        seeds.person_rng = cohort.person_rng = person_rng
    elif name == "config_schema_dump":
        import facecover.config_check as config_check

        config_check.config_problems = lambda config, schema_path: []
    elif name == "iou_union_double":
        import facecover.learn.evaluate as evaluate

        original = evaluate.image_metrics

        def image_metrics(aligned, healthy, injured, wound, masks, healthy_distance, threshold_mm, truth=None):
            out = original(aligned, healthy, injured, wound, masks, healthy_distance, threshold_mm, truth)
            for key in evaluate.IOU_REGIONS:
                out[f"union_{key}"] += out[f"inter_{key}"]  # |P| + |W| = |P ∪ W| + |P ∩ W|
            return out

        evaluate.image_metrics = image_metrics
    elif name == "wall_twice_thick":
        import facecover.printing as printing

        original = printing.wall_thickness

        def wall_thickness(*args, **kwargs):
            return 2.0 * original(*args, **kwargs)

        printing.wall_thickness = wall_thickness
    elif name == "swav_own_code":
        import facecover.learn.swav as swav

        def swapped_prediction_loss(scores_per_view, settings):
            import torch

            codes = [swav.sinkhorn(s, settings.epsilon, settings.sinkhorn_iterations) for s in scores_per_view]
            return sum(-(q * torch.log_softmax(s / settings.temperature, dim=1)).sum(dim=1).mean()
                       for q, s in zip(codes, scores_per_view)) / len(scores_per_view)

        swav.swapped_prediction_loss = swapped_prediction_loss
    elif name == "training_idle":
        import dataclasses

        import facecover.learn.train as train

        original = train.train_mapping

        def train_mapping(net, decoder, vertex_weights, train_set, val, settings, *args, **kwargs):
            idle = dataclasses.replace(settings, learning_rate=0.0)
            return original(net, decoder, vertex_weights, train_set, val, idle, *args, **kwargs)

        train.train_mapping = train_mapping
    elif name == "iou_not_pooled":
        import facecover.learn.evaluate as evaluate

        original = evaluate.summary_row

        def summary_row(method, per_image, size_edges):
            row = original(method, per_image, size_edges)
            for key in evaluate.IOU_REGIONS:
                union = per_image[f"union_{key}"]
                row[f"iou_{key}"] = (per_image[f"inter_{key}"] / union.where(union > 0)).mean()
            return row

        evaluate.summary_row = summary_row
    elif name == "photo_smallest_face":
        import facecover.photo as photo

        original = photo.detect_faces

        def detect_faces(*args, **kwargs):
            return original(*args, **kwargs)[::-1]  # smallest first

        photo.detect_faces = detect_faces
    elif name == "viewer_float64":
        import facecover.viewer as viewer

        original = viewer.b64_array
        viewer.b64_array = lambda array, dtype: original(array, "<f8" if dtype == "<f4" else dtype)
    elif name == "stage_memory_from_mean":
        import facecover.summary as summary

        original = summary.stage_table

        def stage_table(benchmarks):
            stages, jobs = original(benchmarks)
            if len(stages):
                stages["profile_mem_mb"] = summary.profile_mem_mb(stages["max_rss_mb_mean"])
            return stages, jobs

        summary.stage_table = stage_table
    elif name == "wound_seeded_at_grow_threshold":
        import facecover.learn.infer as infer

        original = infer.grow_wound

        def grow_wound(score, graph, areas, seed, min_area_mm2):
            return original(score, graph, areas, 1.0, min_area_mm2)

        infer.grow_wound = grow_wound
    elif name.startswith("given_wound_") or name == "infer_ignores_given_wound":
        import facecover.commands.infer as command

        old, new = {
            "given_wound_npz_inverted": ("return wound.astype(bool)", "return ~wound.astype(bool)"),
            "given_wound_pose_inverted": ("apply_transform(T, ", "apply_transform(np.linalg.inv(T), "),
            "given_wound_unscaled": ('points * report.get("scale_to_mm", 1.0)', "points"),
            "infer_ignores_given_wound": (
                "_given_wound(args.wound, args.registration, injured) if args.wound else None", "None"),
        }[name]
        patch_source(name, command, "cmd_infer" if name == "infer_ignores_given_wound" else "_given_wound", old, new)
    elif name.startswith("mark_"):
        import facecover.marked_wound as marked_wound

        old, new = {"mark_pose_inverted": ("apply_transform(T, ", "apply_transform(np.linalg.inv(T), "),
                    "mark_unscaled": (" * float(scale_to_mm)", "")}[name]
        patch_source(name, marked_wound, "marks_in_canonical", old, new)
    elif name == "network_memorises_rows":
        import facecover.learn.train as train

        original_start, original_predict = train.linear_start, train.predict_coefficients
        seen = []

        def linear_start(net, decoder, vertex_weights, train_set, val):
            seen.append(np.asarray(train_set[0], np.float32))
            return original_start(net, decoder, vertex_weights, train_set, val)

        def predict_coefficients(net, X, batch=1024):
            z = original_predict(net, X, batch)
            known = np.concatenate(seen) if seen else np.zeros((0, np.shape(X)[1]), np.float32)
            memorised = (np.asarray(X, np.float32)[:, None] == known[None]).all(axis=2).any(axis=1)
            z[~memorised] = 0.0  # the mean face for anything not trained on
            return z

        train.linear_start, train.predict_coefficients = linear_start, predict_coefficients
    elif name == "ingest_pose_off":
        import facecover.ingest as ingest
        from scipy.spatial.transform import Rotation

        original = ingest.register_template_to_scan
        off = np.eye(4)
        off[:3, :3], off[:3, 3] = Rotation.from_euler("y", 3.0, degrees=True).as_matrix(), [2.0, 0.0, 0.0]

        def register_template_to_scan(*args, **kwargs):
            reg = original(*args, **kwargs)
            reg.scan_to_canonical = off @ reg.scan_to_canonical
            return reg

        ingest.register_template_to_scan = register_template_to_scan
    elif name == "infer_noise_unread":
        import facecover.commands.infer as command

        patch_source(name, command, "cmd_infer", 'noise = load_npz(args.fit_noise)["noise_mm"]', "noise = None")
    elif name == "filling_wound_inverted":
        import facecover.commands.covers as covers

        patch_source(name, covers, "cmd_filling", 'wound = arrays["wound"]', 'wound = ~arrays["wound"].astype(bool)')
    else:
        raise SystemExit(f"unknown mutant {name!r}; known: {', '.join(MUTANTS)}")


def pytest_command(tests: str, slow: bool = False) -> list[str]:
    """The pytest command for a test selection; `slow` selects the slow tests (`-m slow`, overriding the
    suite's `-m 'not slow'`)."""
    return [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *(["-m", "slow"] if slow else []),
            *shlex.split(tests)]


def run_tests(tests: str, mutant: str | None, site: Path, slow: bool = False) -> tuple[int, float, str]:
    env = dict(os.environ)
    env.pop("FACECOVER_MUTANT", None)
    if mutant:
        env.update(FACECOVER_MUTANT=mutant, PYTHONPATH=f"{site}{os.pathsep}{env.get('PYTHONPATH', '')}")
    t0 = time.perf_counter()
    done = subprocess.run(pytest_command(tests, slow), cwd=ROOT, env=env, capture_output=True, text=True)
    summary = (done.stdout.strip().splitlines() or [""])[-1]
    return done.returncode, time.perf_counter() - t0, summary


def caught_by(code: int, summary: str) -> bool:
    """A test *failed* (an assertion), not an error while collecting or setting up."""
    return code == 1 and " failed" in summary and " error" not in summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated mutants")
    ap.add_argument("--slow", action="store_true",
                    help="also run the slow tests (SLOW) for the mutants that need them (minutes each)")
    ap.add_argument("--list", action="store_true", help="print the mutants and their pytest commands; run nothing")
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(MUTANTS)
    unknown = [n for n in names if n not in MUTANTS]
    if unknown:
        raise SystemExit(f"unknown mutant(s) {', '.join(unknown)}; known: {', '.join(MUTANTS)}")
    fast = [n for n in names if MUTANTS[n][0]]
    slow = [n for n in names if args.slow and n in SLOW]
    skipped = [n for n in names if n not in fast and n not in slow]
    if args.list:
        for name in names:
            tests, what = MUTANTS[name]
            commands = ([shlex.join(pytest_command(tests)[2:])] if tests else []) + \
                ([shlex.join(pytest_command(SLOW[name], True)[2:]) + "  (--slow, if the fast tests miss it)"]
                 if name in SLOW else [])
            print(f"{name:22s} {what}\n    " + "\n    ".join(commands))
        return
    site = Path(tempfile.mkdtemp(prefix="facecover-mutants-"))
    (site / "sitecustomize.py").write_text(
        "import os, sys\n"
        f"sys.path.insert(0, {str(ROOT / 'bench')!r})\n"
        "if os.environ.get('FACECOVER_MUTANT'):\n"
        "    import mutations\n"
        "    mutations.apply(os.environ['FACECOVER_MUTANT'])\n")
    rows, ok = [], True
    baseline = [(t, False) for t in dict.fromkeys(MUTANTS[n][0] for n in fast)]
    baseline += [(t, True) for t in dict.fromkeys(SLOW[n] for n in slow)]
    for tests, is_slow in baseline:
        code, seconds, summary = run_tests(tests, None, site, is_slow)
        print(f"unmutated  {tests}{' (slow)' if is_slow else ''}: {'pass' if code == 0 else 'FAIL'} "
              f"({seconds:.0f} s; {summary})", flush=True)
        ok &= code == 0
    for name in names:
        tests, what = MUTANTS[name]
        if name in skipped:
            print(f"{name:22s} skipped: only a slow test guards it (run with --slow): {what}", flush=True)
            continue
        caught, by = False, []
        for selection, is_slow in ((tests, False), (SLOW.get(name, ""), True)):
            if not selection or caught or (is_slow and name not in slow):
                continue
            code, seconds, summary = run_tests(selection, name, site, is_slow)
            caught = caught_by(code, summary)
            by.append(f"{selection}{' (slow)' if is_slow else ''} ({seconds:.0f} s; {summary})")
        ok &= caught
        rows.append((name, what, "caught" if caught else "MISSED"))
        print(f"{name:22s} {'caught' if caught else 'MISSED'} by {', then '.join(by)}: {what}", flush=True)
    print(f"\n{sum(r[2] == 'caught' for r in rows)}/{len(rows)} mutants caught"
          + (f"; {len(skipped)} skipped (slow tests only; --slow runs them)" if skipped else ""))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
