"""Prompt embeddings: read pre-encoded ones, or encode with the SD 1.5 CLIP text encoder (optional transformers).

Pre-encoding once keeps ``transformers`` (and a 500 MB model) out of every run: the prompt hardly matters for
img2img from the warp frame with reference attention, so one file of embeddings serves every generation.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from xp_sdk.errors import DiffusionWeightsMissingError, ModelError


def load_prompt_embeds(path: str | os.PathLike[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
    from safetensors.torch import load_file

    tensors = load_file(os.fspath(path))
    if "prompt_embeds" not in tensors:
        raise ModelError(f"{path} has no `prompt_embeds` tensor (keys: {sorted(tensors)})")
    positive = tensors["prompt_embeds"]
    if positive.ndim == 2:
        positive = positive[None]
    negative = tensors.get("negative_prompt_embeds")
    if negative is not None and negative.ndim == 2:
        negative = negative[None]
    return positive, negative


def save_prompt_embeds(
    path: str | os.PathLike[str], prompt_embeds: torch.Tensor, negative_prompt_embeds: torch.Tensor | None = None
) -> None:
    from safetensors.torch import save_file

    tensors = {"prompt_embeds": prompt_embeds.detach().cpu().contiguous()}
    if negative_prompt_embeds is not None:
        tensors["negative_prompt_embeds"] = negative_prompt_embeds.detach().cpu().contiguous()
    save_file(tensors, os.fspath(path))


def encode_prompts(
    text_encoder: str | os.PathLike[str],
    tokenizer: str | os.PathLike[str],
    prompts: list[str],
    variant: str | None = None,
) -> torch.Tensor:
    """CLIP last hidden states (len(prompts), 77, 768), as Stable Diffusion 1.5 pipelines compute them."""
    try:
        import transformers
    except ImportError as exc:
        raise DiffusionWeightsMissingError(
            "text_encoder is configured but the optional package `transformers` is not installed: "
            "`pip install transformers`, or pre-encode the prompt once and give [prompt_embeds] instead",
            missing=("text_encoder",),
        ) from exc
    tok: Any = transformers.CLIPTokenizer.from_pretrained(Path(tokenizer), local_files_only=True)
    encoder: Any = transformers.CLIPTextModel.from_pretrained(
        Path(text_encoder), local_files_only=True, use_safetensors=True, variant=variant
    )
    ids = tok(prompts, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt")
    with torch.no_grad():
        return encoder(ids.input_ids)[0].float()  # type: ignore[no-any-return]
