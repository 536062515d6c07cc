"""The optional learned control path: the expression encoder's motion code as tokens for cross-attention.

Per frame, :class:`MotionFeaturizer` turns the retargeted face into an identity-free vector (head rotation,
translation and scale relative to the photo, and the expression as landmark offsets from the photo's own face,
in inter-ocular units with the pose removed). :class:`MotionTokenizer` maps it to a few tokens, and every
cross-attention layer of the UNet attends over them through its own key/value projections, added to its text
attention (decoupled cross-attention, as IP-Adapter does for image tokens). The value projections start at
zero, so untrained weights change nothing; the path only does something with weights trained for it, and none
are published: this is the hook for them. Weights are one ``.safetensors`` file with the config in its metadata.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np
import torch
from torch import nn

from xp_sdk.engine import topology
from xp_sdk.engine.diffusion.reference import attend, attend_kv
from xp_sdk.engine.faces import FaceAnalysis
from xp_sdk.engine.motion import canonical_shape, rigid_centre
from xp_sdk.engine.retarget import TargetFace
from xp_sdk.errors import ModelError

_POINTS = (*topology.EXPRESSIVE, topology.IRIS_A[0], topology.IRIS_B[0])
MOTION_FEATURES = 6 + 2 + 1 + 2 * len(_POINTS)
_FORMAT = "xp-motion-tokens/1"


class MotionFeaturizer:
    """Motion vectors of retargeted frames of one photo; zeros for the photo itself."""

    def __init__(self, source: FaceAnalysis) -> None:
        self._canonical = canonical_shape(source)
        self._rotation = source.rotation
        pts = source.landmarks.astype(np.float64)
        self._centre = rigid_centre(pts)[:2]
        # The retargeter's pixels per canonical unit, so the photo's own pose maps to a zero vector.
        self._iod = topology.inter_ocular((pts - rigid_centre(pts)) @ self._rotation)

    def _project(self, rotation: np.ndarray, scale: float, centre: np.ndarray) -> np.ndarray:
        return (self._canonical @ rotation.T)[:, :2] * scale + centre  # type: ignore[no-any-return]

    def _expression(self, landmarks: np.ndarray, rotation: np.ndarray, scale: float, centre: np.ndarray) -> np.ndarray:
        rigid = self._project(rotation, scale, centre)
        return ((landmarks[list(_POINTS), :2] - rigid[list(_POINTS)]) / scale).ravel()  # type: ignore[no-any-return]

    def __call__(self, target: TargetFace) -> np.ndarray:
        relative = target.rotation @ self._rotation.T
        rotation6 = (relative[:, :2] - np.eye(3)[:, :2]).T.ravel()
        translation = (target.centre - self._centre) / self._iod
        log_scale = math.log(max(target.scale, 1e-6) / self._iod)
        expression = self._expression(target.landmarks, target.rotation, target.scale, target.centre)
        return np.concatenate([rotation6, translation, [log_scale], expression]).astype(np.float32)


def _key(processor_name: str) -> str:
    return processor_name.removesuffix(".processor").replace(".", "__")


class MotionTokenizer(nn.Module):
    """Motion vector → ``num_tokens`` tokens, plus a key/value projection for each cross-attention layer."""

    def __init__(
        self,
        layers: dict[str, int],
        cross_attention_dim: int,
        num_tokens: int = 4,
        hidden: int = 256,
        in_features: int = MOTION_FEATURES,
    ) -> None:
        super().__init__()
        self.config: dict[str, Any] = {
            "format": _FORMAT,
            "layers": dict(layers),
            "cross_attention_dim": cross_attention_dim,
            "num_tokens": num_tokens,
            "hidden": hidden,
            "in_features": in_features,
        }
        self.num_tokens = num_tokens
        self.cross_attention_dim = cross_attention_dim
        self.mlp = nn.Sequential(
            nn.Linear(in_features, hidden), nn.SiLU(), nn.Linear(hidden, num_tokens * cross_attention_dim)
        )
        self.norm = nn.LayerNorm(cross_attention_dim)
        self.to_k = nn.ModuleDict({_key(n): nn.Linear(cross_attention_dim, d, bias=False) for n, d in layers.items()})
        self.to_v = nn.ModuleDict({_key(n): nn.Linear(cross_attention_dim, d, bias=False) for n, d in layers.items()})
        for v in self.to_v.values():
            nn.init.zeros_(v.weight)  # type: ignore[arg-type]

    @classmethod
    def for_unet(cls, unet: Any, num_tokens: int = 4, hidden: int = 256) -> MotionTokenizer:
        layers = {name: _attention_of(unet, name).to_k.out_features for name in cross_attention_names(unet)}
        return cls(layers, int(unet.config.cross_attention_dim), num_tokens, hidden)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        tokens = self.mlp(features).view(features.shape[0], self.num_tokens, self.cross_attention_dim)
        return self.norm(tokens)  # type: ignore[no-any-return]

    def save(self, path: str | os.PathLike[str]) -> None:
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, os.fspath(path), metadata={"config": json.dumps(self.config)})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> MotionTokenizer:
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(os.fspath(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        try:
            config = json.loads(meta["config"])
            if config.pop("format") != _FORMAT:
                raise ValueError("unknown format")
            model = cls(**config)
            model.load_state_dict(load_file(os.fspath(path)))
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise ModelError(f"{path} is not an {_FORMAT} weights file: {exc}") from exc
        return model


def cross_attention_names(unet: Any) -> list[str]:
    return [
        n for n in unet.attn_processors
        if n.endswith(".attn2.processor") and (".attentions." in n or n.startswith("mid_block.attentions."))
    ]


def _attention_of(unet: Any, processor_name: str) -> Any:
    return unet.get_submodule(processor_name.removesuffix(".processor"))


class MotionTokenState:
    """The current frames' tokens (B, N, D), shared by the processors; None turns the path off."""

    def __init__(self, scale: float = 1.0) -> None:
        self.tokens: torch.Tensor | None = None
        self.scale = scale


class MotionCrossAttnProcessor:
    def __init__(self, name: str, tokenizer: MotionTokenizer, state: MotionTokenState) -> None:
        self.name = name
        self.key = _key(name)
        self.tokenizer = tokenizer
        self.state = state

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        if encoder_hidden_states is None or attention_mask is not None or hidden_states.ndim != 3:
            raise RuntimeError(f"motion-token attention at {self.name} expects plain cross-attention")
        out = attend(attn, hidden_states, encoder_hidden_states)
        tokens = self.state.tokens
        if tokens is None or self.state.scale == 0:
            return out
        tokens = tokens.to(hidden_states.dtype)
        key = self.tokenizer.to_k[self.key](tokens)
        value = self.tokenizer.to_v[self.key](tokens)
        # to_out is linear, so the token attention can go through it separately and be added.
        extra = attend_kv(attn, attn.to_q(hidden_states), key, value, hidden_states.shape[0])
        bias = attn.to_out[0].bias
        if bias is not None:
            extra = extra - bias / attn.rescale_output_factor
        return out + self.state.scale * extra


def motion_processors(
    unet: Any, tokenizer: MotionTokenizer, state: MotionTokenState
) -> dict[str, MotionCrossAttnProcessor]:
    names = cross_attention_names(unet)
    missing = sorted(set(names) - {n for n in tokenizer.config["layers"]})
    if missing:
        raise ModelError(
            f"the motion-token weights do not fit this UNet: no projections for {len(missing)} cross-attention "
            f"layers (first: {missing[0]})"
        )
    return {name: MotionCrossAttnProcessor(name, tokenizer, state) for name in names}
