"""The reward model: a scalar head on the last non-pad token, plus the normalisation bias that
makes labeler demonstrations score mean 0 (saved in the config as `reward_bias`)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, PreTrainedModel, PreTrainedTokenizerBase

from components.errors import DataError
from components.models.model import from_folder, load_tokenizer, set_dropout
from components.models.packing import Packing, packed_output


def reward_model_from(path: Path | str, pad_token_id: int) -> PreTrainedModel:
    """A sequence-scoring model initialised from an LM folder: its backbone plus a new scalar head.

    The HF *ForSequenceClassification classes pool at the last non-pad token, as the paper's RM does.
    Only the head may be missing from the folder: a backbone that did not load would train from
    random weights, which transformers reports only as a warning (hidden at our verbosity).
    """
    model, info = from_folder(
        AutoModelForSequenceClassification.from_pretrained,
        path,
        num_labels=1,
        pad_token_id=pad_token_id,
        output_loading_info=True,
    )
    head = {name for name, _ in model.score.named_parameters(prefix="score")}
    if stray := sorted(set(info["missing_keys"]) - head):
        shown = ", ".join(stray[:5]) + (f" and {len(stray) - 5} more" if len(stray) > 5 else "")
        raise DataError(path, None, f"cannot initialise a reward model from it: weights missing: {shown}")
    model.config.pad_token_id = pad_token_id
    set_dropout(model, 0.0)
    return model


class RewardModel(torch.nn.Module):
    """A loaded reward model: r(x, y) = head(h_last) + bias, the bias saved in config.reward_bias.

    Every loader of ours applies the bias; it makes labeler demonstrations score mean 0.
    """

    def __init__(self, model: PreTrainedModel):
        super().__init__()
        self.model = model

    @property
    def backbone(self) -> PreTrainedModel:
        return getattr(self.model, self.model.base_model_prefix)

    @property
    def bias(self) -> float:
        return float(getattr(self.model.config, "reward_bias", 0.0))

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, packing: Packing | None = None
    ) -> torch.Tensor:
        if packing is None:
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
            return logits.squeeze(-1) + self.bias
        # The class's own pooling would take each packed row's last token: score every position, take each row's last.
        scores = packing.unpack(self.model.score(packed_output(self.backbone, packing)).squeeze(-1))
        last = (attention_mask * torch.arange(attention_mask.shape[1], device=attention_mask.device)).argmax(1)
        return scores.gather(1, last[:, None]).squeeze(1) + self.bias


def load_scorer(path: Path | str) -> PreTrainedModel:
    """A trained reward model's Hugging Face model (backbone and head, no bias), dropout off."""
    model = from_folder(AutoModelForSequenceClassification.from_pretrained, path)
    set_dropout(model, 0.0)
    return model


def load_reward_model(
    path: Path | str, device: torch.device | str = "cpu"
) -> tuple[RewardModel, PreTrainedTokenizerBase]:
    return RewardModel(load_scorer(path)).to(device).eval(), load_tokenizer(path)
