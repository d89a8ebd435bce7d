"""Padding-free forwards: packed rows give what the padded batch gives; a model that would mix sequences is caught."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from components.models import packing
from components.models.lm import response_logprobs, response_slice
from components.models.model import load_causal_lm, load_tokenizer
from components.models.packing import pack_rows, packs_exactly
from components.models.reward import RewardModel, load_scorer
from components.models.text import batch_tensors, prompt_ids
from components.params import Params
from components.train import ppo
from components.train.ppo import ValueModel, rollout


@pytest.fixture(scope="module")
def models(trained_root: Path):
    folder = trained_root / "artifacts" / "models" / "sft" / "epoch-02"
    scorer = load_scorer(trained_root / "artifacts" / "models" / "rm")
    return load_causal_lm(folder), load_tokenizer(folder), ValueModel(copy.deepcopy(scorer)), RewardModel(scorer)


def rollout_rows(tok) -> tuple[torch.Tensor, ...]:
    """Prompts and responses of unlike lengths, left- and right-padded as a rollout's."""
    texts = ["Hi", "Write a short story about Alice and a red cup.", "Why?", "Name three animals, then a fourth."]
    prompts = [prompt_ids(tok, [{"role": "user", "content": t}]) for t in texts]
    answers = ("Alice lives here.", "No", "Because it is", "")
    responses = [tok(r, add_special_tokens=False)["input_ids"] for r in answers]
    responses[1].append(tok.eos_token_id)
    return batch_tensors(tok, prompts, responses)


def test_rows_are_packed_end_to_end_and_unpacked_in_place() -> None:
    ids = torch.tensor([[0, 5, 6, 7, 0], [8, 9, 10, 11, 12], [0, 0, 13, 14, 0]])
    p = pack_rows(ids, (ids > 0).long())
    assert p.ids.tolist() == [[5, 6, 7, 8, 9, 10, 11, 12, 13, 14]]
    assert p.positions.tolist() == [[0, 1, 2, 0, 1, 2, 3, 4, 0, 1]]
    assert p.bounds.tolist() == [0, 3, 8, 10] and p.longest == 5
    assert p.unpack(p.ids).tolist() == ids.tolist()


def test_packed_log_probs_values_and_rewards_equal_the_padded_ones(models) -> None:
    policy, tok, value, reward = models
    ids, mask, response_mask, q = rollout_rows(tok)
    p = pack_rows(ids, mask)
    assert p.ids.numel() == mask.sum() < ids.numel(), "the real tokens alone"
    assert packs_exactly(policy) and packs_exactly(value.backbone) and packs_exactly(reward.backbone)
    with torch.no_grad():
        r = response_mask.bool()
        padded, packed = response_logprobs(policy, ids, mask, q, 0.7), response_logprobs(policy, ids, mask, q, 0.7, p)
        assert torch.allclose(padded[r], packed[r], atol=1e-4)
        values = response_slice(value(ids, mask), q), response_slice(value(ids, mask, p), q)
        assert torch.allclose(values[0][r], values[1][r], atol=1e-4)
        assert torch.allclose(reward(ids, mask), reward(ids, mask, p), atol=1e-4)


class MixesSequences(torch.nn.Module):
    """A model whose every position sees the whole row, whatever the position ids say."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(50, 4)

    def get_input_embeddings(self) -> torch.nn.Embedding:
        return self.embed

    def forward(self, input_ids, attention_mask=None, position_ids=None, use_cache=None):
        x = self.embed(input_ids)
        return SimpleNamespace(logits=x.cumsum(1) / torch.arange(1, x.shape[1] + 1)[:, None])


def test_a_model_that_would_mix_packed_sequences_is_not_packed() -> None:
    assert not packs_exactly(MixesSequences())


def test_a_rollout_is_the_same_packed_or_padded(models, tiny_params: Params, monkeypatch) -> None:
    policy, tok, value, reward = models
    texts = ("Hi", "Where does Alice live today?", "Why?")
    prompts = [prompt_ids(tok, [{"role": "user", "content": t}]) for t in texts]
    p = tiny_params.ppo.model_copy(update={"max_new_tokens": 8})
    torch.manual_seed(3)
    packed = rollout(policy, policy, value, reward, tok, prompts, p, beta=0.1)
    monkeypatch.setattr(ppo, "packs_exactly", lambda model: False)
    torch.manual_seed(3)
    padded = rollout(policy, policy, value, reward, tok, prompts, p, beta=0.1)
    assert packed.packed and not padded.packed
    m = padded.response_mask.bool()
    assert torch.equal(packed.ids, padded.ids)
    for name in ("logp", "values", "advantages", "returns"):
        assert torch.allclose(getattr(packed, name)[m], getattr(padded, name)[m], atol=1e-4), name


def test_the_check_runs_once_per_model(models, monkeypatch) -> None:
    policy = models[0]
    packs_exactly(policy)
    monkeypatch.setattr(packing, "pack_rows", lambda *a: pytest.fail("checked again"))
    assert packs_exactly(policy)


def test_evaluation_scores_are_the_same_packed_or_padded(models, monkeypatch) -> None:
    from components.eval import metrics

    _, tok, _, reward = models
    messages = [[{"role": "user", "content": t}] for t in ("Hi", "Where does Alice live today?", "Why?")]
    answers = ["Alice lives in Paris, near the river.", "No.", ""]
    packed = metrics.score(reward, tok, messages, answers, 192)
    monkeypatch.setattr(metrics, "packs_exactly", lambda model: False)
    assert packed == pytest.approx(metrics.score(reward, tok, messages, answers, 192), abs=1e-4)


def test_greedy_answers_come_back_in_the_prompts_order(models) -> None:
    from components.models.generation import answer_ids

    policy, tok = models[0], models[1]
    texts = ("Write a short story about Alice and a red cup.", "Hi", "Name three animals.", "Why?")
    prompts = [prompt_ids(tok, [{"role": "user", "content": t}]) for t in texts]
    together = answer_ids(policy, tok, prompts, 12, batch_size=2)  # sorted by length into batches of two
    assert together == [answer_ids(policy, tok, [p], 12)[0] for p in prompts]


def test_packed_gradients_equal_the_padded_ones(models) -> None:
    policy, tok, _, _ = models
    ids, mask, response_mask, q = rollout_rows(tok)
    grads = []
    for p in (None, pack_rows(ids, mask)):
        policy.zero_grad()
        (response_logprobs(policy, ids, mask, q, 0.7, p) * response_mask).sum().backward()
        grads.append([w.grad.clone() for w in policy.parameters()])
    policy.zero_grad()
    for padded, packed in zip(*grads, strict=True):
        assert torch.allclose(padded, packed, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_other_architectures_pack_exactly(kind: str) -> None:
    """Grouped-query attention with rotary positions (Llama), learned absolute positions (GPT-2)."""
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

    torch.manual_seed(0)
    if kind == "llama":
        config = LlamaConfig(
            vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2,
        )  # fmt: skip
    else:
        config = GPT2Config(vocab_size=64, n_embd=32, n_layer=2, n_head=4, n_positions=64)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa").eval()
    assert packs_exactly(model)
    ids = torch.randint(3, 64, (3, 9))
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 0, 0], [1] * 9, [0, 0, 0, 0, 1, 1, 1, 1, 0]])  # prompts end at column 5
    response = mask[:, 5:].bool()
    with torch.no_grad():
        padded = response_logprobs(model, ids, mask, 5, 0.7)
        packed = response_logprobs(model, ids, mask, 5, 0.7, pack_rows(ids, mask))
    assert torch.allclose(padded[response], packed[response], atol=1e-4)
    assert model.config._attn_implementation == "sdpa", "the switch is undone"


def ragged(decoded) -> bool:
    return len({len(r) for r in decoded.responses}) > 1


def test_decoding_on_the_reserved_cache_equals_the_library_cache(models, monkeypatch) -> None:
    """Rows that end leave the batch and the cache; the reserved cache gives the library's answers and log-probs."""
    from transformers import DynamicCache

    from components.models import generation

    policy, tok = models[0], models[1]
    texts = ("Write a short story about Alice and a red cup.", "Hi", "Name three animals.", "Why?")
    prompts = [prompt_ids(tok, [{"role": "user", "content": t}]) for t in texts]
    # A sampling seed at which some rows end before others (a tiny model seldom ends within 64 tokens).
    decoded = ((s, generation.decode(policy, tok, prompts, 64, temperature=0.7, generator_seed=s)) for s in range(16))
    seed, reserved = next(((s, d) for s, d in decoded if ragged(d)), (None, None))
    assert seed is not None, "no seed of 16 ends a row early"
    monkeypatch.setattr(generation, "reserved_cache", lambda model, capacity: DynamicCache(config=model.config))
    library = generation.decode(policy, tok, prompts, 64, temperature=0.7, generator_seed=seed)
    assert ragged(library), "some rows end before others"
    assert reserved.responses == library.responses
    assert torch.allclose(reserved.logprobs, library.logprobs, atol=1e-4)
