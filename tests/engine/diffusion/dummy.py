"""Tiny random components with the real architectures, for tests (as diffusers' own fast tests build them).

Nothing comes from a hub. The ControlNet's zero convolutions and the motion tokens' value projections, which
real training moves away from zero, are randomised here so both paths have an effect to measure; and the UNet's
self-attention queries and keys are scaled up, because at random initialisation attention is nearly uniform and
extra (reference) tokens would only dilute it, whatever they show.
"""

from __future__ import annotations

import torch

from xp_sdk.engine.diffusion.components import DiffusionComponents
from xp_sdk.engine.diffusion.motion_tokens import MotionTokenizer

CROSS_ATTENTION_DIM = 16
TEXT_TOKENS = 8


def tiny_unet(seed: int = 0) -> object:
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=CROSS_ATTENTION_DIM,
        attention_head_dim=4,
        norm_num_groups=4,
    )
    with torch.no_grad():
        for name, module in unet.named_modules():
            if name.endswith(("attn1.to_q", "attn1.to_k")):
                module.weight.mul_(4.0)
    return unet


def tiny_controlnet(seed: int = 1) -> object:
    from diffusers import ControlNetModel

    torch.manual_seed(seed)
    controlnet = ControlNetModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        in_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        cross_attention_dim=CROSS_ATTENTION_DIM,
        attention_head_dim=4,
        conditioning_embedding_out_channels=(8, 8),
        norm_num_groups=4,
    )
    with torch.no_grad():
        zero_initialised = [
            *controlnet.controlnet_down_blocks,
            controlnet.controlnet_mid_block,
            controlnet.controlnet_cond_embedding.conv_out,
        ]
        for module in zero_initialised:
            torch.nn.init.normal_(module.weight, std=1.0)
            torch.nn.init.normal_(module.bias, std=0.1)
    return controlnet


def tiny_vae(seed: int = 2, tiny: bool = False) -> object:
    torch.manual_seed(seed)
    if tiny:
        from diffusers import AutoencoderTiny

        return AutoencoderTiny(
            encoder_block_out_channels=(8, 8),
            decoder_block_out_channels=(8, 8),
            num_encoder_blocks=(1, 1),
            num_decoder_blocks=(1, 1),
            latent_channels=4,
        )
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(8, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=4,
        sample_size=32,
    )


def tiny_motion_adapter(seed: int = 3) -> object:
    from diffusers import MotionAdapter

    torch.manual_seed(seed)
    return MotionAdapter(
        block_out_channels=(8, 16),
        motion_layers_per_block=1,
        motion_norm_num_groups=4,
        motion_num_attention_heads=2,
        motion_max_seq_length=32,
    )


def tiny_components(
    *,
    seed: int = 0,
    controlnet: bool = True,
    motion_adapter: bool = False,
    motion_tokens: bool = False,
    tiny_autoencoder: bool = False,
) -> DiffusionComponents:
    """Everything a pipeline needs, at a few thousand parameters each: 32-px crops run in well under a second."""
    unet = tiny_unet(seed)
    if motion_adapter:
        from diffusers import UNetMotionModel

        unet = UNetMotionModel.from_unet2d(unet, tiny_motion_adapter(seed + 3))
    generator = torch.Generator().manual_seed(seed + 4)
    prompt = torch.randn(1, TEXT_TOKENS, CROSS_ATTENTION_DIM, generator=generator)
    negative = torch.randn(1, TEXT_TOKENS, CROSS_ATTENTION_DIM, generator=generator)
    tokenizer = None
    if motion_tokens:
        torch.manual_seed(seed + 5)
        tokenizer = MotionTokenizer.for_unet(unet, num_tokens=2, hidden=16)
        with torch.no_grad():
            for v in tokenizer.to_v.values():
                torch.nn.init.normal_(v.weight, std=0.5)  # type: ignore[arg-type]
    return DiffusionComponents(
        unet=unet,
        vae=tiny_vae(seed + 2, tiny=tiny_autoencoder),
        controlnet=tiny_controlnet(seed + 1) if controlnet else None,
        prompt_embeds=prompt,
        negative_prompt_embeds=negative,
        motion_tokenizer=tokenizer,
    )
