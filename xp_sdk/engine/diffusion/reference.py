"""Appearance from the photo: a reference attention bank, installed as diffusers attention processors.

A reference pass runs the UNet on the photo's latents and records, for every spatial self-attention layer, the
tokens that layer attended over (the "write" mode). In the frames' pass each such layer attends over its own
tokens *and* the photo's (the "read" mode), so identity, skin and hair texture are copied from the photo instead
of invented; this is the reference-only / ReferenceNet mechanism, done with the public processor API rather
than by patching ``forward`` methods. Temporal (motion module) attention layers are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch.nn import functional


def attend(attn: Any, hidden: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """``attn``'s attention of ``hidden`` (B, N, C) over ``context`` (B, M, C'), output projection included."""
    batch = hidden.shape[0]
    query = attn.to_q(hidden)
    key = attn.to_k(context)
    value = attn.to_v(context)
    return attend_kv(attn, query, key, value, batch)


def attend_kv(attn: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, batch: int) -> torch.Tensor:
    head_dim = key.shape[-1] // attn.heads
    q = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
    k = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
    v = value.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
    out = functional.scaled_dot_product_attention(q, k, v)
    out = out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
    out = attn.to_out[1](attn.to_out[0](out))
    return out / attn.rescale_output_factor  # type: ignore[no-any-return]


@dataclass
class ReferenceBank:
    """Shared by every reference processor of one UNet; the pipeline switches its mode around each pass."""

    mode: Literal["off", "write", "read"] = "off"
    scale: float = 1.0
    features: dict[str, torch.Tensor] = field(default_factory=dict)


class ReferenceAttnProcessor:
    """Self-attention that records (write) or also attends over (read) the reference's tokens."""

    def __init__(self, name: str, bank: ReferenceBank) -> None:
        self.name = name
        self.bank = bank

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        if hidden_states.ndim != 3 or attention_mask is not None or attn.spatial_norm is not None:
            raise RuntimeError(f"reference attention at {self.name} expects plain (B, N, C) self-attention")
        bank = self.bank
        if bank.mode == "write":
            bank.features[self.name] = hidden_states.detach()
        reference = bank.features.get(self.name) if bank.mode == "read" and bank.scale > 0 else None
        if reference is None:
            return attend(attn, hidden_states, hidden_states)
        reference = reference.to(hidden_states.dtype).expand(hidden_states.shape[0], -1, -1)
        with_reference = attend(attn, hidden_states, torch.cat([hidden_states, reference], dim=1))
        if bank.scale >= 1.0:
            return with_reference
        plain = attend(attn, hidden_states, hidden_states)
        return plain + bank.scale * (with_reference - plain)


def is_spatial_self_attention(processor_name: str) -> bool:
    """Self-attention of a spatial transformer block (not of a motion module, not cross-attention)."""
    return processor_name.endswith(".attn1.processor") and (
        ".attentions." in processor_name or processor_name.startswith("mid_block.attentions.")
    )


def reference_processors(unet: Any, bank: ReferenceBank) -> dict[str, ReferenceAttnProcessor]:
    names = [n for n in unet.attn_processors if is_spatial_self_attention(n)]
    if not names:
        raise RuntimeError("the UNet has no spatial self-attention layers for reference attention")
    return {name: ReferenceAttnProcessor(name, bank) for name in names}
