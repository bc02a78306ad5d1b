#!/usr/bin/env bash
# Debian packages facecover uses: libusb (open3d needs it to import; required) and PrusaSlicer (G-code;
# optional: without it everything but the G-code is made); given the Python the venv is made with
# ($1), also its venv module (Debian/Ubuntu ship it apart: python3.X-venv) and, on Python 3.13, a C++
# compiler and the Python headers, because meshmonk is built from source there (scripts/check-meshmonk.sh).
# Installs them with apt-get when run as root on a machine that has apt-get; otherwise says what to install.
set -euo pipefail
python="${1:-}"
required=()
optional=()
ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0' || required+=(libusb-1.0-0)
if [[ -n "$python" ]]; then
  pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  "$python" -c 'import ensurepip, venv' 2>/dev/null || required+=("python$pyver-venv")
  if [[ "$pyver" == 3.13 ]]; then
    command -v g++ >/dev/null || required+=(g++)
    "$python" -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
      || required+=("python$pyver-dev")
  fi
fi
command -v prusa-slicer >/dev/null || optional+=(prusa-slicer)
missing=("${required[@]}" "${optional[@]}")
if [[ ${#missing[@]} -eq 0 ]]; then exit 0; fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
  if [[ ${#optional[@]} -gt 0 ]]; then
    echo "facecover: PrusaSlicer is not installed, so no G-code will be written (sudo apt-get install -y prusa-slicer)" >&2
  fi
  if [[ ${#required[@]} -gt 0 ]]; then
    echo "facecover needs Debian packages: ${required[*]} (run: sudo apt-get install -y ${required[*]})" >&2
    exit 1
  fi
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${required[@]}" >/dev/null
if [[ ${#optional[@]} -gt 0 ]]; then
  apt-get install -y -qq --no-install-recommends "${optional[@]}" >/dev/null \
    || echo "facecover: could not install ${optional[*]}; no G-code will be written" >&2
fi
