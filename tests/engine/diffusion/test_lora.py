"""Fusing LoRAs without peft: kohya and peft key layouts, and refusal of a LoRA for another model."""

from __future__ import annotations

import pytest
import torch

from tests.engine.diffusion.dummy import tiny_unet
from xp_sdk.engine.diffusion.lora import fuse_lora
from xp_sdk.errors import ModelError


def test_peft_layout_on_a_linear_layer_scales_by_alpha_over_rank() -> None:
    unet = tiny_unet()
    layer = unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_q  # type: ignore[attr-defined]
    before = layer.weight.clone()
    down, up = torch.randn(4, 8), torch.randn(8, 4)
    name = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"
    fused = fuse_lora(unet, {f"{name}.lora_A.weight": down, f"{name}.lora_B.weight": up}, scale=0.5)
    assert fused == 1
    assert torch.allclose(layer.weight, before + 0.5 * up @ down, atol=1e-6)


def test_kohya_layout_reaches_nested_modules_and_text_encoder_keys_are_skipped() -> None:
    unet = tiny_unet()
    layer = unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_out[0]  # type: ignore[attr-defined]
    before = layer.weight.clone()
    key = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_out_0"
    state = {
        f"{key}.lora_down.weight": torch.randn(2, 8),
        f"{key}.lora_up.weight": torch.randn(8, 2),
        f"{key}.alpha": torch.tensor(4.0),
        "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": torch.randn(2, 4),
        "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight": torch.randn(4, 2),
    }
    assert fuse_lora(unet, state) == 1
    expected = before + 2.0 * state[f"{key}.lora_up.weight"] @ state[f"{key}.lora_down.weight"]
    assert torch.allclose(layer.weight, expected, atol=1e-5)


def test_a_lora_for_another_model_is_refused() -> None:
    unet = tiny_unet()
    wrong = {"lora_unet_input_blocks_1_1_proj_in.lora_down.weight": torch.randn(2, 320),
             "lora_unet_input_blocks_1_1_proj_in.lora_up.weight": torch.randn(320, 2)}  # fmt: skip
    with pytest.raises(ModelError, match="does not fit this UNet"):
        fuse_lora(unet, wrong)
    shape_mismatch = {"unet.conv_in.lora_A.weight": torch.randn(2, 99), "unet.conv_in.lora_B.weight": torch.randn(8, 2)}
    with pytest.raises(ModelError, match="does not fit"):
        fuse_lora(unet, shape_mismatch)
    with pytest.raises(ModelError, match="no lora_down"):
        fuse_lora(unet, {"something.weight": torch.zeros(1)})
