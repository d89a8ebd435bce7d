"""instructflow components: the pipeline's parts as plain functions over files.

Nothing in this package imports Prefect: a component does not know whether a flow,
`dvc repro`, the CLI or a test called it.
"""

import os

# Set before any module of ours imports transformers (generation.py and text.py do, not only
# model.py): both are read once, when transformers and huggingface_hub are first imported.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no network at run time: local directories only
