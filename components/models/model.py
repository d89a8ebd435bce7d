"""Models and tokenizers: the tiny base model, loading and saving a local Hugging Face model,
and the chat template. The reward model is in reward.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPTNeoXConfig,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)
from transformers.utils import logging as hf_logging

from components.data.io import atomic_path
from components.errors import StageError
from components.params import ModelParams
from components.tracking import is_main_process

hf_logging.disable_progress_bar()

PAD, DOC, END = "<|pad|>", "<|endoftext|>", "<|end|>"
ROLE_TOKENS = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
# Each turn is "<|role|>\n content <|end|>\n"; a prompt ends with "<|assistant|>\n" and the
# answer ends with <|end|>, the end-of-sequence token a policy must learn to produce.
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] + '<|end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)
# For a local model whose tokenizer has no template: plain-text markers, no new tokens.
PLAIN_TEMPLATE = (
    "{% for m in messages %}{{ '### ' + m['role'] + ':\\n' + m['content'] + eos_token + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '### assistant:\\n' }}{% endif %}"
)


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (as GPT-2's) with the chat special tokens and template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = [PAD, DOC, END, *ROLE_TOKENS.values()]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=END, bos_token=DOC)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_config(params: ModelParams, vocab_size: int, pad: int, eos: int, bos: int) -> PretrainedConfig:
    """The tiny base model's shape from params; dropout is set per stage (set_dropout).

    gpt_neox uses rotary positions, which copy names and places from the prompt better than
    GPT-2's learned positions at this size, at the same speed (README, Training).
    Input and output embeddings are tied in both, as in GPT-2.
    """
    ids = {"pad_token_id": pad, "eos_token_id": eos, "bos_token_id": bos}
    if params.architecture == "gpt2":
        return GPT2Config(
            vocab_size=vocab_size, n_positions=params.context, n_embd=params.n_embd, n_layer=params.n_layer,
            n_head=params.n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **ids,
        )  # fmt: skip
    return GPTNeoXConfig(
        vocab_size=vocab_size, max_position_embeddings=params.context, hidden_size=params.n_embd,
        num_hidden_layers=params.n_layer, num_attention_heads=params.n_head, intermediate_size=4 * params.n_embd,
        hidden_dropout=0.0, attention_dropout=0.0, tie_word_embeddings=True, use_parallel_residual=False,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 1.0}, **ids,
    )  # fmt: skip


def tiny_lm(tokenizer: PreTrainedTokenizerBase, params: ModelParams) -> PreTrainedModel:
    ids = (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id)
    return AutoModelForCausalLM.from_config(tiny_config(params, len(tokenizer), *ids))


def context_length(config: PretrainedConfig, default: int) -> int:
    """Positions the model can attend over (GPT-2 and GPT-NeoX name it differently)."""
    for name in ("n_positions", "max_position_embeddings"):
        if isinstance(value := getattr(config, name, None), int):
            return value
    return default


def load_tokenizer(path: Path | str) -> PreTrainedTokenizerBase:
    """A tokenizer from a local folder, with a pad token and a chat template guaranteed."""
    tok = AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if not tok.chat_template:
        tok.chat_template = PLAIN_TEMPLATE
    return tok


def set_dropout(model: torch.nn.Module, p: float) -> None:
    """Residual (and attention/embedding) dropout for SFT; 0 for RM scoring and PPO."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = p


def inference_device() -> torch.device:
    """Where a stage that only runs models (select_sft, evaluate, rounds, chat) puts them: the GPU when
    there is one. Training stages get theirs from accelerate, one GPU per process."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def require_model_folder(path: Path | str) -> Path:
    """PATH as a local Hugging Face folder this project loads: config.json, safetensors weights, and
    no code of its own (`auto_map`: with trust_remote_code off, transformers would quietly load its
    built-in class for the model type instead, which may not be the model the folder describes)."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise StageError(f"{path}: not a Hugging Face model folder (no config.json)")
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StageError(f"{path / 'config.json'}: not valid JSON ({e})") from None
    if isinstance(config, dict) and config.get("auto_map"):
        raise StageError(
            f"{path / 'config.json'}: the model names code of its own (auto_map: {sorted(config['auto_map'])}); "
            "instructflow never runs a model's own code: use a model whose architecture transformers has built in"
        )
    if not any(path.glob("*.safetensors")):
        found = sorted(f.name for f in path.glob("*.bin")) + sorted(f.name for f in path.glob("*.pt"))
        also = f" (found {', '.join(found)}: pickled weights are never loaded; convert them to safetensors)"
        raise StageError(f"{path}: no safetensors weights" + (also if found else ""))
    return path


def from_folder(load: Callable[..., PreTrainedModel], path: Path | str, **options: object) -> PreTrainedModel:
    """LOAD (a from_pretrained) on a checked folder; a damaged weights file is one clear error."""
    from safetensors import SafetensorError

    folder = require_model_folder(path)
    try:
        return load(str(folder), use_safetensors=True, trust_remote_code=False, **options)
    except (SafetensorError, OSError, ValueError) as e:
        raise StageError(f"{folder}: cannot load the model ({' '.join(str(e).split())})") from None


def load_causal_lm(path: Path | str, dropout: float = 0.0, device: torch.device | str = "cpu") -> PreTrainedModel:
    model = from_folder(AutoModelForCausalLM.from_pretrained, path)
    set_dropout(model, dropout)
    return model.to(device)


def save_pretrained(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, out: Path, **extra: object) -> None:
    """Hugging Face folder (safetensors), written to a temporary path and renamed into place.

    Only the main process writes (under `accelerate launch` every process holds the same weights).
    """
    if not is_main_process():
        return
    with atomic_path(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if extra:
            (tmp / "instructflow.json").write_text(json.dumps(extra, indent=2, sort_keys=True), encoding="utf-8")


# --- the reward model ----------------------------------------------------------------------


@contextmanager
def attention_switched(model: torch.nn.Module, implementation: str, when: bool = True) -> Iterator[None]:
    """MODEL's attention implementation set to IMPLEMENTATION for the block (if WHEN), then restored."""
    before = getattr(getattr(model, "config", None), "_attn_implementation", None)
    if when:
        model.set_attn_implementation(implementation)
    try:
        yield
    finally:
        if when:
            model.set_attn_implementation(before)
