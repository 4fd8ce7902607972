"""Stable Diffusion checkpoints as k-diffusion denoisers with AUTOMATIC1111's semantics.

>>> from sdlab.models import load_model
>>> model = load_model("dreamshaper_631BakedVae.safetensors")      # or a hub id, a folder, None = embedded
>>> cond = model.encode_prompt(["a (very beautiful:1.3) [cat]"], ["blurry"])
>>> denoiser = model.denoiser(cond, cfg_scale=7.0)                  # D(x, sigma) -> x0 with A1111's CFG
>>> images = model.decode(latents)                                  # (B, 3, H, W) in [0, 1]

``import sdlab.models`` imports torch only; diffusers and transformers load when a model does.
"""

from sdlab.models.denoisers import (
    CFGDenoiser,
    DiffusersUNet,
    DiscreteEpsDenoiser,
    DiscreteSchedule,
    DiscreteVDenoiser,
    LCMEpsDenoiser,
    training_alphas_cumprod,
    training_sigmas,
)
from sdlab.models.loading import KINDS, SDModel, load_model, resolve_device, sha256_file, wrap_pipeline
from sdlab.models.preview import linear_preview, normalised_preview
from sdlab.models.prompts import Conditioning, PromptChunk, encode_prompt, parse_prompt_attention, tokenize_prompt

__all__ = [
    "load_model",
    "SDModel",
    "Conditioning",
    "wrap_pipeline",
    "resolve_device",
    "KINDS",
    "CFGDenoiser",
    "DiscreteEpsDenoiser",
    "DiscreteVDenoiser",
    "DiscreteSchedule",
    "LCMEpsDenoiser",
    "DiffusersUNet",
    "training_sigmas",
    "training_alphas_cumprod",
    "parse_prompt_attention",
    "tokenize_prompt",
    "encode_prompt",
    "PromptChunk",
    "linear_preview",
    "normalised_preview",
    "sha256_file",
]
