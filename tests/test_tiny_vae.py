"""The tiny decoder (TAESD) path: any model through SDLAB_TAESD or an explicit source, the embedded model's own
distilled decoder close to its VAE, clear errors when the weights are missing, and per-step metrics through it."""

from __future__ import annotations

import pytest
import torch

from sdlab import SdlabError
from sdlab.models.tiny_vae import TAESD_HUB, load_tiny_vae, tiny_vae_source
from sdlab.testing import tiny_model


@pytest.fixture(scope="module")
def taesd_folder(tmp_path_factory):
    """A randomly initialised TAESD-shaped AutoencoderTiny (1/8 latents, like the tiny test models)."""
    from diffusers import AutoencoderTiny

    folder = tmp_path_factory.mktemp("taesd")
    torch.manual_seed(0)
    AutoencoderTiny(
        encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
        num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1),
    ).save_pretrained(folder)  # fmt: skip
    return folder


def test_a_model_decodes_through_the_tiny_decoder_named_by_sdlab_taesd(taesd_folder, monkeypatch):
    monkeypatch.setenv("SDLAB_TAESD", str(taesd_folder))
    sd = tiny_model("sd1")
    assert tiny_vae_source(sd) == str(taesd_folder)
    latents = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    images = sd.decode_as(latents, "tiny")
    assert images.shape == (3, 3, 64, 64) and images.dtype == torch.float32
    assert float(images.min()) >= 0 and float(images.max()) <= 1
    alone = sd.decode_as(latents[1:2], "tiny")  # per image: batching changes only kernel rounding
    torch.testing.assert_close(images[1:2], alone, atol=1e-5, rtol=0)
    assert load_tiny_vae(sd) is load_tiny_vae(sd)  # loaded once per model


def test_missing_tiny_decoder_names_the_source_and_the_way_out(monkeypatch, tmp_path):
    monkeypatch.delenv("SDLAB_TAESD", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    sd = tiny_model("sdxl")
    assert tiny_vae_source(sd) == TAESD_HUB["sdxl"]
    with pytest.raises(SdlabError, match="madebyollin/taesdxl") as err:
        sd.decode_as(torch.zeros(1, 4, 8, 8), "tiny")
    assert "SDLAB_TAESD" in str(err.value) and "huggingface-cli download" in str(err.value)
    with pytest.raises(SdlabError, match="unknown decode mode 'vae'"):
        sd.decode_as(torch.zeros(1, 4, 8, 8), "vae")


def test_the_embedded_tiny_decoder_is_close_to_its_vae():
    from sdlab.generation import generate, load
    from sdlab.measure.metrics import psnr

    sd = load(None)
    res = generate("a yellow star and a blue house, night sky with stars, on snow", steps=8, seeds=[5], model=sd,
                   trajectory=True)  # fmt: skip
    latents = res.trajectories[0].latents("denoised")[[1, 4, 7]]  # an early (blurry) to a late prediction
    full, tiny = sd.decode_as(latents, "full"), sd.decode_as(latents, "tiny")
    cheap = torch.nn.functional.interpolate(sd.decode_as(latents, "preview"), size=full.shape[-2:], mode="bilinear")
    assert tiny.shape == full.shape
    # a preview that tracks the VAE (21.4-22.8 dB measured), well above A1111's linear preview (17.1-20.7 dB)
    assert float(psnr(tiny, full).min()) > 20.0
    assert float(psnr(tiny, full).mean()) > float(psnr(cheap, full).mean()) + 3.0  # 22.2 vs 18.4 dB measured
