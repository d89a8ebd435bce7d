#!/usr/bin/env bash
# Virtual environments of their own for the peers (never the project's .venv): trl 1.16 for
# SFTTrainer and RewardTrainer, trl 1.12 for PPOTrainer (the last release with
# trl.experimental.ppo). Each gets the CPU torch 2.13.0 first (an unpinned torch pulls a CUDA
# build of several GB) and the project's transformers, so both sides run the same model code.
set -euo pipefail
cd "$(dirname "$0")"
transformers=$(../../.venv/bin/python -c "import transformers; print(transformers.__version__)")
for trl in 1.16.0 1.12.0; do
  venv=.venvs/trl-${trl%.*}
  # Installed and of the versions asked for: nothing to do (a half-made or older one is topped up).
  if ! "$venv/bin/python" -c "import sys, trl, transformers; sys.exit(trl.__version__ != '$trl' or transformers.__version__ != '$transformers')" 2>/dev/null; then
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
    "$venv/bin/python" -m pip install -q "torch==2.13.0"
    "$venv/bin/python" -m pip install -q "trl==$trl" "transformers==$transformers"
  fi
  "$venv/bin/python" -c "import trl, transformers, torch; print('$venv: trl', trl.__version__, 'transformers', transformers.__version__, 'torch', torch.__version__)"
done
