#!/usr/bin/env bash
# Set up a fresh clone: a virtualenv in .venv with the project installed, DVC configured,
# and data/ restored. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

# The virtualenv takes about 2.3 GB (torch alone about 1 GB): say so up front rather than let pip
# stop half-way with "No space left on device".
free_mb=$(df -Pm . | awk 'NR==2 {print $4}')
if [ -n "$free_mb" ] && [ "$free_mb" -lt 3000 ] && [ ! -d .venv ]; then
  echo "warning: $(pwd) has ${free_mb} MB free; the set-up needs about 3,000 MB (.venv about 2,300 MB)" >&2
fi

python3 -m venv .venv
py=.venv/bin/python
$py -m pip install -q --upgrade pip
# CPU torch 2.13.0 unless a torch is already installed (install your CUDA build first on a GPU machine).
$py -c "import torch" 2>/dev/null || $py -m pip install -q "torch==2.13.0"
$py -m pip install -q -e ".[dev]"

# No DVC remote is reachable from a fresh clone: recreate data/ byte for byte from params.yaml and
# put it in the DVC cache. `dvc add` leaves data.dvc untouched when the bytes are the ones it records.
.venv/bin/dvc config --local core.analytics false
if [ ! -f data/demonstrations.jsonl ]; then
  .venv/bin/instructflow data generate --out data
  .venv/bin/dvc add -q data
  if ! git diff --quiet -- data.dvc 2>/dev/null; then
    echo "warning: the regenerated data/ differs from what data.dvc records (git diff data.dvc)" >&2
  fi
fi

# The labeling page's browser test drives Debian's Chromium through Playwright (no browser
# download). Install it when missing and this user may; otherwise that one test is skipped.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "warning: could not install chromium; the browser test will be skipped" >&2
  else
    echo "note: install Debian's chromium (apt-get install chromium) to run the browser test" >&2
  fi
fi
