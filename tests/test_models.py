"""SD checkpoints as k-diffusion denoisers: loading, A1111 CFG, eps/v denoisers, conditioning, on tiny models."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys

import pytest
import torch

from sdlab.errors import SdlabError
from sdlab.models import (
    CFGDenoiser,
    DiscreteEpsDenoiser,
    DiscreteVDenoiser,
    LCMEpsDenoiser,
    load_model,
    training_sigmas,
)
from sdlab.models.preview import SD_LATENT_RGB, linear_preview
from sdlab.testing import save_single_file, tiny_model, tiny_pipeline

SD_SCHEDULER = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "num_train_timesteps": 1000}


pytestmark = pytest.mark.usefixtures("one_thread", "no_network")  # tiny models run fastest on one thread


@pytest.fixture(scope="module")
def models():
    return {kind: tiny_model(kind) for kind in ("sd1", "sd2-v", "sdxl")}


@pytest.fixture(scope="module")
def sd1_folder(tmp_path_factory, models):
    folder = tmp_path_factory.mktemp("tiny-sd1")
    models["sd1"].pipe.save_pretrained(folder)
    return folder


def _noisy(model, sigma=3.0, batch=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, *model.latent_shape(64, 64), generator=g) * sigma
    return x, torch.full((batch,), sigma)


# --- loading ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sd1", "sd2-v", "sdxl"])
def test_folder_round_trip(kind, models, tmp_path):
    model = models[kind]
    model.pipe.save_pretrained(tmp_path)
    loaded = load_model(tmp_path, device="cpu")
    assert (loaded.kind, loaded.prediction_type, loaded.is_sdxl) == (model.kind, model.prediction_type, kind == "sdxl")
    assert loaded.model_id == tmp_path.name and loaded.revision is None
    prompts, negatives = ["a (very beautiful:1.3) [cat]"], ["blurry"]
    x, sigma = _noisy(model)
    out = model.denoiser(model.encode_prompt(prompts, negatives), 7.0)(x, sigma)
    back = loaded.denoiser(loaded.encode_prompt(prompts, negatives), 7.0)(x, sigma)
    torch.testing.assert_close(back, out, rtol=1e-4, atol=1e-4)
    assert len(loaded.file_sha256) == 64 and loaded.model_hash == loaded.file_sha256[:10]


def test_kinds_and_prediction_types(models):
    assert [(m.kind, m.prediction_type) for m in models.values()] == [
        ("sd1", "epsilon"),
        ("sd2", "v_prediction"),
        ("sdxl", "epsilon"),
    ]
    for model in models.values():
        assert model.sigmas.dtype == torch.float32 and bool((model.sigmas[1:] > model.sigmas[:-1]).all())
        assert (model.device.type, model.dtype) == ("cpu", torch.float32)


def test_single_safetensors_file_in_a1111_layout(models, sd1_folder, tmp_path):
    file = save_single_file(models["sd1"].pipe, tmp_path / "dreamshaper_631BakedVae.safetensors")
    single = load_model(file, config=sd1_folder, device="cpu")
    folder = load_model(sd1_folder, device="cpu")
    assert single.model_id == "dreamshaper_631BakedVae" and single.kind == "sd1"
    sha = hashlib.sha256(file.read_bytes()).hexdigest()
    assert single.file_sha256 == sha and single.model_hash == sha[:10]
    x, sigma = _noisy(single)
    cond = ["a cat, house"], ["blurry"]
    out_single = single.denoiser(single.encode_prompt(*cond), 5.0)(x, sigma)
    out_folder = folder.denoiser(folder.encode_prompt(*cond), 5.0)(x, sigma)
    torch.testing.assert_close(out_single, out_folder, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(single.decode(out_single), folder.decode(out_folder), rtol=1e-4, atol=1e-4)


def test_a_file_of_no_published_width_needs_config(models, tmp_path):
    """The tiny test model's file is recognised as SD 1.x, but its widths are no published architecture's."""
    file = save_single_file(models["sd1"].pipe, tmp_path / "tiny.safetensors")
    with pytest.raises(SdlabError, match="widths are not those of SD1") as info:
        load_model(file, device="cpu")
    assert "config=" in str(info.value)


def test_pickles_need_allow_pickle(models, sd1_folder, tmp_path):
    from sdlab.testing import original_sd_state_dict

    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": original_sd_state_dict(models["sd1"].pipe)}, ckpt)
    with pytest.raises(SdlabError, match="allow_pickle=True") as err:
        load_model(ckpt, config=sd1_folder, device="cpu")
    assert "arbitrary code" in str(err.value)
    loaded = load_model(ckpt, config=sd1_folder, device="cpu", allow_pickle=True)
    x, sigma = _noisy(loaded)
    cond = loaded.encode_prompt(["a cat"], [""])
    torch.testing.assert_close(
        loaded.inner_denoiser()(x, sigma, **cond.cond),
        models["sd1"].inner_denoiser()(x, sigma, **cond.cond),
        rtol=1e-5,
        atol=1e-5,
    )


def test_truncated_and_corrupt_files_name_the_file(models, sd1_folder, tmp_path):
    good = save_single_file(models["sd1"].pipe, tmp_path / "good.safetensors")
    data = good.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(SdlabError, match="truncated") as err:
        load_model(truncated, config=sd1_folder, device="cpu")
    assert str(truncated) in str(err.value)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}" + bytes(100))
    with pytest.raises(SdlabError, match="garbage.safetensors"):
        load_model(garbage, config=sd1_folder, device="cpu")
    broken_ckpt = tmp_path / "broken.ckpt"
    broken_ckpt.write_bytes(b"PK\x03\x04 this is no zip")
    with pytest.raises(SdlabError, match="broken.ckpt"):
        load_model(broken_ckpt, device="cpu", allow_pickle=True)


def test_missing_hub_id_offline_names_the_id():
    with pytest.raises(SdlabError, match="sdlab-tests/no-such-model") as err:
        load_model("sdlab-tests/no-such-model", device="cpu")
    assert "cache" in str(err.value) and "online" in str(err.value)
    with pytest.raises(SdlabError, match="sdlab-tests/no-such-model"):
        load_model("sdlab-tests/no-such-model", device="cpu", local_files_only=True)


def test_hub_id_from_the_local_cache(models, tmp_path, monkeypatch):
    import huggingface_hub.constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--sdlab-tests--tiny-sd1"  # the Hugging Face cache layout
    models["sd1"].pipe.save_pretrained(repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    loaded = load_model("sdlab-tests/tiny-sd1", device="cpu")
    assert (loaded.model_id, loaded.revision, loaded.kind) == ("sdlab-tests/tiny-sd1", commit, "sd1")
    assert load_model("sdlab-tests/tiny-sd1", revision="main", device="cpu").revision == commit


def test_bad_sources(tmp_path):
    with pytest.raises(SdlabError, match="no such checkpoint"):
        load_model(tmp_path / "missing.safetensors", device="cpu")
    (tmp_path / "weights.txt").write_text("x")
    with pytest.raises(SdlabError, match="unknown checkpoint file type"):
        load_model(tmp_path / "weights.txt", device="cpu")
    with pytest.raises(SdlabError, match="model_index.json"):
        load_model(tmp_path, device="cpu")
    with pytest.raises(SdlabError, match="device"):
        load_model(tmp_path, device="gpu-please")


def test_options_that_do_not_apply_are_refused(models, sd1_folder, tmp_path):
    file = save_single_file(models["sd1"].pipe, tmp_path / "tiny.safetensors")
    with pytest.raises(SdlabError, match="config= is for single-file"):
        load_model(sd1_folder, config=sd1_folder, device="cpu")
    with pytest.raises(SdlabError, match="revision= is for hub ids"):
        load_model(sd1_folder, revision="main", device="cpu")
    with pytest.raises(SdlabError, match="variant="):
        load_model(file, config=sd1_folder, variant="fp16", device="cpu")
    with pytest.raises(SdlabError, match="variant"):  # no fp16 files in the folder
        load_model(sd1_folder, variant="fp16", device="cpu")


def test_embedded_source_uses_pipeline_dir(monkeypatch, sd1_folder):
    import sdlab.embedded

    monkeypatch.setattr(sdlab.embedded, "pipeline_dir", lambda: sd1_folder, raising=False)
    model = load_model(device="cpu")
    assert model.model_id == "embedded" and model.kind == "sd1"
    assert load_model("embedded", device="cpu").source == sd1_folder


def test_import_stays_light():
    code = (
        "import sys, sdlab, sdlab.models; "
        "print(sorted(m for m in ('sdlab.testing', 'diffusers', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- denoisers -----------------------------------------------------------------------------------------------


def test_training_sigmas_match_stable_diffusion():
    from diffusers import DDPMScheduler

    sigmas = training_sigmas(SD_SCHEDULER)
    assert sigmas.shape == (1000,) and sigmas.dtype == torch.float32
    # k-diffusion's well-known SD range
    assert float(sigmas[0]) == pytest.approx(0.0292, abs=1e-4) and float(sigmas[-1]) == pytest.approx(14.6146, abs=1e-3)
    ac = DDPMScheduler(**SD_SCHEDULER).alphas_cumprod
    torch.testing.assert_close(sigmas, ((1 - ac) / ac) ** 0.5, rtol=1e-5, atol=0)


def test_sigma_t_mapping():
    sigmas = training_sigmas(SD_SCHEDULER)
    D = DiscreteEpsDenoiser(lambda x, t: torch.zeros_like(x), sigmas)
    t = torch.tensor([0.0, 1.0, 500.0, 999.0])
    torch.testing.assert_close(D.t_to_sigma(t), sigmas[[0, 1, 500, 999]])
    torch.testing.assert_close(D.sigma_to_t(sigmas[[0, 1, 500, 999]]), t, rtol=0, atol=1e-3)
    between = (sigmas[10] * sigmas[11]).sqrt()  # halfway in log-sigma
    assert float(D.sigma_to_t(between[None])) == pytest.approx(10.5, abs=1e-3)
    assert int(D.sigma_to_t(between[None] * 1.001, quantize=True)) == 11
    assert (D.sigma_min, D.sigma_max) == (sigmas[0], sigmas[-1])


def _exact_network(D, x0, target):
    """A network that knows x0: from its VP input z and timestep t it returns the exact eps or v."""

    def unet(z, t):
        sigma = D.t_to_sigma(t)[:, None, None, None]
        alpha, s = 1 / (sigma**2 + 1) ** 0.5, sigma / (sigma**2 + 1) ** 0.5
        eps = (z - alpha * x0) / s
        return eps if target == "eps" else alpha * eps - s * x0

    return unet


@pytest.mark.parametrize(("cls", "target"), [(DiscreteEpsDenoiser, "eps"), (DiscreteVDenoiser, "v")])
def test_exact_prediction_returns_x0(cls, target):
    sigmas = training_sigmas(SD_SCHEDULER).double()
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(3, 4, 8, 8, generator=g, dtype=torch.float64)
    D = cls(lambda z, t: None, sigmas)
    D.inner_model = _exact_network(D, x0, target)
    sigma = torch.tensor([0.05, 1.0, 14.0], dtype=torch.float64)
    x = x0 + torch.randn_like(x0) * sigma[:, None, None, None]
    torch.testing.assert_close(D(x, sigma), x0, rtol=1e-6, atol=1e-6)


def test_lcm_denoiser_is_a1111s():
    """A1111's LCM denoiser: 50 timesteps 19..999, snapped sigma -> t, and the consistency boundary blend."""
    sigmas = training_sigmas(SD_SCHEDULER).double()
    calls = []

    def unet(z, t):
        calls.append((z, t))
        return torch.ones_like(z)

    D = LCMEpsDenoiser(unet, sigmas)
    assert D.timesteps.tolist() == list(range(19, 1000, 20))
    torch.testing.assert_close(D.sigmas, sigmas[19::20])
    assert (float(D.sigma_min), float(D.sigma_max)) == (float(sigmas[19]), float(sigmas[999]))
    # any sigma snaps to the nearest LCM timestep, also below the first and between two of them
    assert D.sigma_to_t(sigmas[[0, 19, 22, 36, 999]]).tolist() == [19, 19, 19, 39, 999]
    between = (sigmas[499] * sigmas[519]).sqrt()
    expected = torch.stack([sigmas[19], between, sigmas[999]])
    torch.testing.assert_close(D.t_to_sigma(torch.tensor([19.0, 509.0, 999.0])), expected)

    x = torch.full((2, 4, 2, 2), 2.0, dtype=torch.float64)
    sigma = torch.tensor([float(sigmas[19]), 3.0], dtype=torch.float64)
    out = D(x, sigma)
    z, t = calls[-1]
    assert t.tolist() == [19, int(D.sigma_to_t(sigma[1:]))]
    torch.testing.assert_close(z, x / (sigma**2 + 1).sqrt()[:, None, None, None])
    for i in range(2):
        s = 10.0 * float(t[i])
        x0 = 2.0 - float(sigma[i]) * 1.0  # eps = 1 everywhere, sigma as asked (not snapped)
        expected = x0 * s / math.sqrt(s * s + 0.25) + 2.0 * 0.25 / (s * s + 0.25)
        torch.testing.assert_close(out[i], torch.full_like(out[i], expected))


def test_lcm_denoiser_refuses_v_prediction(models):
    with pytest.raises(SdlabError, match="eps-prediction"):
        models["sd2-v"].inner_denoiser(lcm=True)
    assert isinstance(models["sd1"].inner_denoiser(lcm=True), LCMEpsDenoiser)


class _Recorder:
    """Wraps a denoiser and records the batch size of every call."""

    def __init__(self, inner):
        self.inner, self.batches = inner, []

    def __call__(self, x, sigma, **cond):
        self.batches.append(x.shape[0])
        return self.inner(x, sigma, **cond)


def test_cfg_batched_equals_two_passes(models):
    model = models["sd1"]
    cond = model.encode_prompt(["a cat", "a dog"], ["blurry", ""])
    inner = _Recorder(model.inner_denoiser())
    cfg = CFGDenoiser(inner, cond.cond, cond.uncond, 7.5)
    x, sigma = _noisy(model, batch=2)
    denoised = cfg(x, sigma)
    assert inner.batches == [4] and cfg.nfe == 1
    c = model.inner_denoiser()(x, sigma, **cond.cond)
    u = model.inner_denoiser()(x, sigma, **cond.uncond)
    torch.testing.assert_close(denoised, u + (c - u) * 7.5, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(cfg.last_uncond_denoised, u, rtol=1e-4, atol=1e-4)
    cfg(x, sigma)
    assert cfg.nfe == 2
    plain = CFGDenoiser(inner.inner, cond.cond, cond.uncond, 7.5)  # exposes the inner schedule
    assert plain.sigmas is inner.inner.sigmas and plain.sigma_max == inner.inner.sigmas[-1]
    assert float(plain.t_to_sigma(torch.tensor(999.0))) == pytest.approx(float(model.sigmas[-1]))


def test_cfg_scale_one_is_the_cond_prediction(models):
    model = models["sdxl"]
    cond = model.encode_prompt(["a cat"], ["blurry"])
    inner = _Recorder(model.inner_denoiser())
    cfg = CFGDenoiser(inner, cond.cond, cond.uncond, 1.0)
    x, sigma = _noisy(model, batch=2)  # one prompt for two latents
    denoised = cfg(x, sigma)
    assert inner.batches == [2] and cfg.nfe == 1  # the uncond pass is skipped
    expected = model.inner_denoiser()(x, sigma, **{k: v.expand(2, *v.shape[1:]) for k, v in cond.cond.items()})
    torch.testing.assert_close(denoised, expected)
    assert cfg.last_uncond_denoised is denoised


def test_cfg_prompts_of_different_lengths(models):
    model = models["sd1"]
    cond = model.encode_prompt([" ".join(["cat"] * 100)], ["blurry"])
    c, u = cond.cond["encoder_hidden_states"], cond.uncond["encoder_hidden_states"]
    assert (c.shape[1], u.shape[1]) == (154, 77)
    x, sigma = _noisy(model)
    inner = model.inner_denoiser()
    c_out = inner(x, sigma, encoder_hidden_states=c)

    recorder = _Recorder(inner)
    separate = CFGDenoiser(recorder, cond.cond, cond.uncond, 7.0)(x, sigma)
    assert recorder.batches == [1, 1]  # A1111's default: two passes, no padding
    torch.testing.assert_close(
        separate, inner(x, sigma, encoder_hidden_states=u) + (c_out - inner(x, sigma, encoder_hidden_states=u)) * 7.0
    )

    padded_u = torch.cat([u, cond.empty], dim=1)  # A1111's "Pad prompt/negative prompt"
    empty = CFGDenoiser(inner, cond.cond, cond.uncond, 7.0, pad="empty", empty=cond.empty)(x, sigma)
    u_out = inner(x, sigma, encoder_hidden_states=padded_u)
    torch.testing.assert_close(empty, u_out + (c_out - u_out) * 7.0, rtol=1e-4, atol=1e-4)

    repeated_u = torch.cat([u, u[:, -1:].expand(-1, 77, -1)], dim=1)  # pad_cond_uncond_v0
    v0 = CFGDenoiser(inner, cond.cond, cond.uncond, 7.0, pad="v0")(x, sigma)
    u_out = inner(x, sigma, encoder_hidden_states=repeated_u)
    torch.testing.assert_close(v0, u_out + (c_out - u_out) * 7.0, rtol=1e-4, atol=1e-4)
    with pytest.raises(SdlabError, match="pad"):
        CFGDenoiser(inner, cond.cond, cond.uncond, 7.0, pad="zeros")


# --- conditioning --------------------------------------------------------------------------------------------


def test_sdxl_conditioning_shapes(models):
    model = models["sdxl"]
    cond = model.encode_prompt(["a cat", "a dog"], ["", "blurry"], size=(96, 64))
    for part in (cond.cond, cond.uncond):
        assert part["encoder_hidden_states"].shape == (2, 77, 64)  # CLIP-L 32 + bigG 32 channels
        assert part["text_embeds"].shape == (2, 32)
        assert part["time_ids"].tolist() == [[64, 96, 0, 0, 64, 96]] * 2  # (h, w, top, left, h, w)
    # A1111: an empty SDXL negative prompt is all zeros, a non-empty one is not
    assert not cond.uncond["encoder_hidden_states"][0].any() and not cond.uncond["text_embeds"][0].any()
    assert cond.uncond["encoder_hidden_states"][1].abs().sum() > 0
    assert model.encode_prompt(["a cat"], [""]).cond["time_ids"].tolist() == [[64, 64, 0, 0, 64, 64]]


def test_clip_skip(models):
    model = models["sd1"]
    one = model.encode_prompt(["a cat"], [""], clip_skip=1).cond["encoder_hidden_states"]
    two = model.encode_prompt(["a cat"], [""], clip_skip=2).cond["encoder_hidden_states"]
    assert not torch.allclose(one, two)
    te, tok = model.pipe.text_encoder, model.pipe.tokenizer
    ids = tok("a cat", padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        out = te(input_ids=ids, output_hidden_states=True)
        expected = te.final_layer_norm(out.hidden_states[-2])  # A1111: hidden_states[-k], then the final norm
    torch.testing.assert_close(two, expected)
    torch.testing.assert_close(one, out.last_hidden_state)
    with pytest.raises(SdlabError, match="clip_skip"):
        model.encode_prompt(["a cat"], [""], clip_skip=9)
    with pytest.warns(UserWarning, match="ignores Clip skip"):
        sdxl = models["sdxl"]
        skipped = sdxl.encode_prompt(["a cat"], [""], clip_skip=2)
    torch.testing.assert_close(
        skipped.cond["encoder_hidden_states"], sdxl.encode_prompt(["a cat"], [""]).cond["encoder_hidden_states"]
    )


def test_prompt_lists_are_checked(models):
    model = models["sd1"]
    with pytest.raises(SdlabError, match="list of strings"):
        model.encode_prompt("a cat", [""])
    with pytest.raises(SdlabError, match="one negative prompt per prompt"):
        model.encode_prompt(["a cat", "a dog"], [""])
    with pytest.raises(SdlabError, match="not supported"):
        model.encode_prompt(["a [cat:dog:0.5]"], [""])


# --- images --------------------------------------------------------------------------------------------------


def test_latent_shape_decode_encode(models):
    model = models["sd1"]
    assert model.latent_shape(64, 48) == (4, 6, 8)
    with pytest.raises(SdlabError, match="multiples of 8"):
        model.latent_shape(65, 64)
    latents = torch.randn(2, *model.latent_shape(64, 48))
    images = model.decode(latents)
    assert images.shape == (2, 3, 48, 64) and images.dtype == torch.float32 and images.device.type == "cpu"
    assert float(images.min()) >= 0 and float(images.max()) <= 1
    assert model.encode(images).shape == (2, 4, 6, 8)
    torch.testing.assert_close(model.encode(images[:1]), model.encode(images)[:1])


def test_preview(models, sd1_folder, tmp_path):
    latents = torch.randn(2, 4, 6, 8)
    fallback = models["sd1"].preview(latents)  # the tiny VAE is not SD's: plain normalised channels
    assert fallback.shape == (2, 3, 6, 8) and float(fallback.min()) == 0 and float(fallback.max()) == 1
    one = torch.zeros(1, 4, 1, 1)
    one[0, 0] = 1.0
    expected = [0.5 + 0.5 * c for c in SD_LATENT_RGB[0]]  # A1111: rgb * 0.5 + 0.5
    assert linear_preview(one, SD_LATENT_RGB).flatten().tolist() == pytest.approx(expected)
    folder = tmp_path / "with-preview"
    models["sd1"].pipe.save_pretrained(folder)
    matrix, bias = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]], [0.1, 0.0, -0.1]
    (folder / "sdlab_preview.json").write_text(json.dumps({"matrix": matrix, "bias": bias}))
    preview = load_model(folder, device="cpu").preview(latents)
    rgb = latents[:, :3] + torch.tensor(bias).view(1, 3, 1, 1)
    torch.testing.assert_close(preview, (rgb * 0.5 + 0.5).clamp(0, 1))


def test_tiny_pipelines_are_seeded():
    a, b, c = tiny_pipeline("sd1", seed=3), tiny_pipeline("sd1", seed=3), tiny_pipeline("sd1", seed=4)
    wa, wb, wc = (p.unet.conv_in.weight for p in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    state = torch.get_rng_state()
    tiny_pipeline("sd1")
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is untouched
    with pytest.raises(SdlabError, match="sd2-v"):
        tiny_pipeline("sd2")
    assert math.isclose(tiny_model("sd1").vae_scale_factor, 8)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("kind", ["sd1", "sd2-v", "sdxl"])
def test_cuda_fp16_matches_cpu_fp32(kind, models):
    from sdlab.models import wrap_pipeline

    cpu = models[kind]
    gpu = wrap_pipeline(tiny_pipeline(kind), model_id=f"tiny-{kind}", device="cuda")
    assert (gpu.device.type, gpu.dtype) == ("cuda", torch.float16)  # the CUDA default
    prompts = (["a (very beautiful:1.3) [cat], " + "house " * 80], ["blurry"])
    x, sigma = _noisy(cpu, batch=2)
    reference = cpu.denoiser(cpu.encode_prompt(*prompts), 5.0)(x, sigma)
    out = gpu.denoiser(gpu.encode_prompt(*prompts), 5.0)(x.cuda(), sigma.cuda())
    assert out.dtype == torch.float32 and out.device.type == "cuda"
    cosine = torch.nn.functional.cosine_similarity(out.cpu().flatten(), reference.flatten(), dim=0)
    assert float(cosine) > 0.999
    images = gpu.decode(out)
    assert images.device.type == "cpu" and images.dtype == torch.float32
    torch.testing.assert_close(images, cpu.decode(reference), rtol=0, atol=0.02)
    if kind == "sdxl":  # force_upcast: SDXL's VAE decodes in float32
        assert gpu.pipe.vae.dtype == torch.float32
    assert gpu.encode(images.cuda()).shape == x.shape
