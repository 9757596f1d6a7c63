#!/usr/bin/env bash
# Set up finepose from nothing: system libraries (Debian/Ubuntu), a virtualenv in .venv,
# torch/torchvision as pinned (installed from the local wheel cache where there is one),
# then finepose itself with its test extras. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=$(sed 's/#.*//' scripts/apt-packages.txt | xargs)  # the same list docker/Dockerfile installs
if command -v apt-get >/dev/null; then
  missing=$(for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
  if [ -n "$missing" ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
  fi
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1
.venv/bin/python -m pip install -q -e ".[test,ray]"
echo "finepose is set up in .venv ($(.venv/bin/python -c 'import open3d, torch; print("open3d", open3d.__version__, "torch", torch.__version__)'))"
