#!/usr/bin/env bash
# Makes sure MeshMonk imports in the venv given as $1 (default .venv), after `pip install -e .`.
# meshmonk 0.3.0 ships one wheel for Python >= 3.12, tagged cp312-abi3, whose extension is not
# really abi3: pip installs it on Python 3.13 but `import meshmonk` then fails
# (No module named 'meshmonk._meshmonk_core'). Then this rebuilds it from its source release,
# with nanobind < 3 as a build constraint (nanobind 3 does not build it), which takes 2-7 minutes on
# 2 cores (once: pip caches the wheel) and needs a C++ compiler and the Python headers (scripts/system-deps.sh installs them).
set -euo pipefail
venv="${1:-.venv}"
py="$venv/bin/python"
here="$(cd "$(dirname "$0")" && pwd)"
if err=$("$py" -c 'import meshmonk' 2>&1); then exit 0; fi
version=$("$py" -c 'import importlib.metadata as m; print(m.version("meshmonk"))' 2>/dev/null || true)
pyver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [[ -z "$version" ]]; then
  echo "facecover: meshmonk is not installed in $venv: $err" >&2
  exit 1
fi
echo "facecover: the meshmonk $version wheel pip chose does not import on Python $pyver" \
     "($(tail -n 1 <<<"$err")); building meshmonk $version from source with nanobind<3" \
     "(scripts/meshmonk-build-constraints.txt): a few minutes, once per machine (pip keeps the wheel it builds)" >&2
constraint="$here/meshmonk-build-constraints.txt"
# pip >= 25.3 takes build constraints with --build-constraint; older pip applies PIP_CONSTRAINT
# to the build environment too
if "$py" -m pip install --help | grep -q -- '--build-constraint'; then
  "$py" -m pip install -q --no-deps --force-reinstall --no-binary meshmonk \
    --build-constraint "$constraint" "meshmonk==$version"
else
  PIP_CONSTRAINT="$constraint" "$py" -m pip install -q --no-deps --force-reinstall --no-binary meshmonk \
    "meshmonk==$version"
fi
if ! err=$("$py" -c 'import meshmonk' 2>&1); then
  echo "facecover: meshmonk $version built from source still does not import: $err" >&2
  exit 1
fi
echo "facecover: meshmonk $version built from source; it imports on Python $pyver" >&2
