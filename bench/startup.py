"""Benchmark: start-up cost of every workflow stage, before and after, in one run.

For each rule of a finished workflow run (`make run` first), one of its jobs is run again exactly as
Snakemake ran it (its shell command from `.snakemake/metadata`), in a scratch copy of the working
directory whose `results/` holds symbolic links to the real files (the job's outputs are written to the
scratch copy; nothing in `results/` is touched). Per stage it prints:

* wall: the command's wall time (s) on that job's input (one subject, one file: the smallest unit);
* import: the time Python spent importing (s), from `-X importtime` on a second run of the same command
  (the top-level imports, the interpreter's own start included);
* work: wall - import, what the stage itself does;
* before: the import time of the same facecover modules in the tree at `--before` (default: the commit
  before the start-up work), measured here in the same run with the same interpreter.

Target (flagged in the last column): at most 0.5 s of start-up for every stage whose own work is under 1 s.

    .venv/bin/python bench/startup.py [--before 7b87e30] [--rules scars,watertight] [--repeat 3]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "7b87e30"  # last commit before imports were cut (lazy trimesh/Open3D/torch, light modules)
SKIP_RULES = {"stage_times"}
MOVED = {"facecover.seeds": "facecover.cohort"}  # split off after BEFORE: where the code lived then  # reads every benchmark record: not one stage's start-up


def recorded_seconds(rule: str) -> float | None:
    """The longest wall time (s) Snakemake recorded for the rule's jobs (results/benchmarks)."""
    times = [float(p.read_text().splitlines()[-1].split("\t")[0])
             for p in (ROOT / "results" / "benchmarks" / rule).glob("*.tsv")]
    return max(times) if times else None


def jobs_by_rule() -> dict[str, dict]:
    """One recorded job per rule: its shell command and all its output files (from Snakemake's metadata)."""
    jobs: dict[str, dict] = {}
    meta = ROOT / ".snakemake" / "metadata"
    if not meta.is_dir():
        sys.exit("bench/startup.py: no .snakemake/metadata here; run the workflow first (make run)")
    for path in sorted(meta.iterdir()):
        record = json.loads(path.read_text())
        if not record.get("shellcmd") or record.get("incomplete"):
            continue
        output = base64.b64decode(path.name.replace("@", "/") + "===").decode()
        job = jobs.setdefault(record["shellcmd"], {"rule": record["rule"], "cmd": record["shellcmd"], "outputs": []})
        job["outputs"].append(output)
    first: dict[str, dict] = {}
    for job in jobs.values():
        if job["rule"] not in SKIP_RULES:
            first.setdefault(job["rule"], job)
    return first


def scratch_tree() -> Path:
    """A scratch working directory: the repository's top level linked, `results/` as a tree of links."""
    work = Path(tempfile.mkdtemp(prefix="facecover-startup-"))
    for entry in ROOT.iterdir():
        if entry.name not in ("results", ".snakemake"):
            (work / entry.name).symlink_to(entry)
    for dirpath, dirnames, filenames in os.walk(ROOT / "results"):
        rel = Path(dirpath).relative_to(ROOT)
        if rel.parts[1:2] in (("logs",), ("benchmarks",)):
            dirnames.clear()
            continue
        (work / rel).mkdir(parents=True, exist_ok=True)
        for name in filenames:
            (work / rel / name).symlink_to(Path(dirpath) / name)
    (work / "results" / "logs").mkdir(exist_ok=True)
    return work


def _unlink_outputs(work: Path, outputs: list[str]) -> None:
    for out in outputs:
        target = work / out
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.is_dir():
            shutil.rmtree(target)


def _command(job: dict) -> str:
    """The job's shell command without its log redirection."""
    return re.sub(r"\s*2>\s*\S+\s*$", "", job["cmd"])


def _env(pythonpath: str | None = None, importtime: bool = False) -> dict:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", OMP_NUM_THREADS="1")
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    if importtime:
        env["PYTHONPROFILEIMPORTTIME"] = "1"
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return env


def import_seconds(stderr: str) -> tuple[float, list[str]]:
    """Total import time (s) from `-X importtime` output (top-level entries) and the facecover modules."""
    total, modules = 0.0, []
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if not m:
            continue
        if m.group(3) == " ":  # top level
            total += int(m.group(2)) * 1e-6
        if m.group(4).startswith("facecover.") and not m.group(4).startswith("facecover.commands"):
            modules.append(m.group(4))
    return total, modules


def run_job(work: Path, job: dict, repeat: int) -> dict:
    cmd = _command(job)
    walls = []
    for _ in range(repeat):
        _unlink_outputs(work, job["outputs"])
        t0 = time.perf_counter()
        done = subprocess.run(["bash", "-c", cmd], cwd=work, env=_env(), capture_output=True, text=True)
        walls.append(time.perf_counter() - t0)
        if done.returncode:
            raise RuntimeError(f"{job['rule']}: {cmd}\n{done.stderr[-2000:]}")
    imports, modules = [], []
    for _ in range(repeat):
        _unlink_outputs(work, job["outputs"])
        done = subprocess.run(["bash", "-c", cmd], cwd=work, env=_env(importtime=True), capture_output=True, text=True)
        seconds, modules = import_seconds(done.stderr)
        imports.append(seconds)
    return {"stage": job["rule"], "wall_s": min(walls), "import_s": min(imports), "modules": modules}


def before_import_seconds(tree: Path, modules: list[str], repeat: int) -> float | None:
    """Import time (s) of `facecover.cli` and the given modules in another source tree (a module split off
    since is imported from where its code was then, `MOVED`); None when the tree lacks one of them (the stage
    did not exist there)."""
    def exists(m):
        return ((tree / "src" / (m.replace(".", "/") + ".py")).exists()
                or (tree / "src" / m.replace(".", "/") / "__init__.py").exists())

    modules = [MOVED.get(m, m) for m in modules]
    if not all(exists(m) for m in modules):
        return None
    present = ["facecover.cli"] + modules
    code = "; ".join(f"import {m}" for m in dict.fromkeys(present))
    best = None
    for _ in range(repeat):
        done = subprocess.run([sys.executable, "-c", code], cwd=tree, env=_env(str(tree / "src"), importtime=True),
                              capture_output=True, text=True)
        if done.returncode:
            return None
        seconds = import_seconds(done.stderr)[0]
        best = seconds if best is None else min(best, seconds)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default=BEFORE, help="git ref to compare import times with")
    ap.add_argument("--rules", help="comma-separated rules (default: all that ran)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement; the fastest counts")
    ap.add_argument("--max-seconds", type=float, default=15.0,
                    help="skip stages whose recorded jobs took longer (start-up is a small part of them)")
    args = ap.parse_args()

    jobs = jobs_by_rule()
    if args.rules:
        jobs = {r: j for r, j in jobs.items() if r in args.rules.split(",")}
    else:
        long = sorted(r for r in jobs if (recorded_seconds(r) or 0.0) > args.max_seconds)
        print(f"skipped (recorded jobs over {args.max_seconds:.0f} s): {', '.join(long)}")
        jobs = {r: j for r, j in jobs.items() if r not in long}
    before_tree = Path(tempfile.mkdtemp(prefix="facecover-before-")) / "tree"
    subprocess.run(["git", "worktree", "add", "--detach", "-q", str(before_tree), args.before], cwd=ROOT, check=True)
    work = scratch_tree()
    rows = []
    try:
        for rule in sorted(jobs):
            row = run_job(work, jobs[rule], args.repeat)
            row["before_import_s"] = before_import_seconds(before_tree, row.pop("modules"), args.repeat)
            row["work_s"] = max(row["wall_s"] - row["import_s"], 0.0)
            row["target_met"] = "-" if row["work_s"] >= 1.0 else ("yes" if row["import_s"] <= 0.5 else "NO")
            rows.append(row)
            print(f"  {rule:24s} wall {row['wall_s']:6.2f} s  import {row['import_s']:5.2f} s  "
                  f"(before {row['before_import_s'] if row['before_import_s'] is not None else float('nan'):5.2f} s)",
                  flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        subprocess.run(["git", "worktree", "remove", "--force", str(before_tree)], cwd=ROOT, check=False)
    print("(before = nan: the stage's modules did not exist at that commit)")
    table = pd.DataFrame(rows)[["stage", "wall_s", "import_s", "work_s", "before_import_s", "target_met"]]
    print(f"\nstart-up per stage (fastest of {args.repeat}; before = {args.before}); target: import <= 0.5 s where "
          "work < 1 s")
    print(table.sort_values("work_s").round(2).to_string(index=False))
    small = table[table.work_s < 1.0]
    print(f"\nstages with work < 1 s: {len(small)}; import <= 0.5 s in {(small.import_s <= 0.5).sum()}; "
          f"mean import {small.import_s.mean():.2f} s now vs {small.before_import_s.mean():.2f} s before")


if __name__ == "__main__":
    main()
