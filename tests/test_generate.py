"""sdlab.generate end to end on tiny in-code Stable Diffusion pipelines (random weights, no network)."""

import pytest
import torch

import sdlab
from sdlab import SdlabError
from sdlab.generation import schedule_for


@pytest.fixture(scope="module")
def sd1():
    from sdlab.testing import tiny_model

    return tiny_model("sd1", seed=0)


def gen(model, **kw):
    kw.setdefault("prompt", "a red cat")
    kw.setdefault("steps", 6)
    kw.setdefault("cfg", 5.0)
    kw.setdefault("size", (32, 32))
    return sdlab.generate(kw.pop("prompt"), model=model, **kw)


@pytest.mark.parametrize("sampler", ["Euler a", "DPM++ SDE", "DPM++ 2M", "DDIM", "dpmpp_2m_sde_gpu"])
def test_an_image_does_not_change_with_batch_size_or_position(sd1, sampler):
    """Noise is per image (exactly); the network's batched kernels may round differently (~1e-6 relative)."""
    together = gen(sd1, sampler=sampler, seeds=[3, 4, 5])
    alone = gen(sd1, sampler=sampler, seeds=[4])
    shifted = gen(sd1, sampler=sampler, seeds=[4, 5, 3], batch_size=2)
    scale = together.latents.abs().max()
    assert torch.allclose(together.latents[1], alone.latents[0], rtol=0, atol=2e-6 * scale)
    assert torch.allclose(together.latents[1], shifted.latents[0], rtol=0, atol=2e-6 * scale)
    assert (together.images[1] - alone.images[0]).abs().max() < 1e-5


def test_deterministic_sampler_is_bit_identical_on_rerun(sd1):
    a, b = gen(sd1, sampler="DPM++ 2M Karras", seeds=[1, 2]), gen(sd1, sampler="DPM++ 2M Karras", seeds=[1, 2])
    assert torch.equal(a.images, b.images)


@pytest.mark.parametrize("sampler", ["Euler", "Heun", "DPM2", "dpmpp_2s_ancestral"])
def test_handoff_split_equals_one_run(sd1, sampler):
    """ComfyUI KSamplerAdvanced: N steps in one run equal the same N steps split across two runs."""
    kw = {"sampler": sampler, "seeds": [7, 8], "steps": 8, "schedule": "karras"}
    if sampler == "dpmpp_2s_ancestral":
        kw["eta"] = 0.0
    whole = gen(sd1, **kw)
    first = gen(sd1, end_step=3, return_leftover_noise=True, **kw)
    second = gen(sd1, start_step=3, add_noise=False, latents=first.latents, **kw)
    assert torch.equal(whole.latents, second.latents)


def test_trajectory_records_every_step(sd1):
    r = gen(sd1, sampler="Heun", seeds=[0, 1], steps=5, trajectory=True)
    traj = r.trajectories[1]
    assert len(traj) == 5 and [s["i"] for s in traj.steps] == list(range(5))
    assert traj.column("sigma") == pytest.approx(r.sigmas[:-1].tolist())
    nfe = traj.column("nfe")
    assert nfe == sorted(nfe) and r.nfe == 2 * 5 - 1  # Heun: the last step is Euler
    assert traj.latents().shape == (5, 4, 4, 4)
    assert traj.decode(sd1, mode="full").shape == (5, 3, 32, 32)
    assert traj.decode(sd1, mode="preview").shape == (5, 3, 4, 4)  # A1111's cheap preview: latent resolution
    assert torch.equal(traj.steps[-1]["denoised"], r.latents[1])  # Euler family's last step is a plain denoise


def test_rng_sources(sd1):
    cpu = gen(sd1, sampler="Euler a", seeds=[9], rng="CPU")
    gpu_on_cpu = gen(sd1, sampler="Euler a", seeds=[9], rng="GPU")
    nv = gen(sd1, sampler="Euler a", seeds=[9], rng="NV")
    assert torch.equal(cpu.latents, gpu_on_cpu.latents)  # A1111: "GPU" on a CPU device is the CPU generator
    assert not torch.allclose(cpu.latents, nv.latents)


def test_ensd_changes_only_ancestral_noise(sd1):
    base = gen(sd1, sampler="Euler a", seeds=[2])
    assert not torch.equal(base.latents, gen(sd1, sampler="Euler a", seeds=[2], ensd=31337).latents)
    det = gen(sd1, sampler="Euler", seeds=[2])
    assert torch.equal(det.latents, gen(sd1, sampler="Euler", seeds=[2], ensd=31337).latents)


def test_saved_png_round_trips_infotext_and_spec(sd1, tmp_path):
    from sdlab.infotext import parse_infotext, read_png

    r = gen(sd1, sampler="DPM++ 2M Karras", seeds=[11], negative_prompt="blurry", cfg=6.5, clip_skip=2)
    (path,) = r.save(tmp_path)
    infotext, spec = read_png(path)
    p = parse_infotext(infotext)
    assert p["prompt"] == "a red cat" and p["negative_prompt"] == "blurry"
    assert (p["Sampler"], p["Steps"], p["CFG scale"], p["Seed"], p["Clip skip"]) == ("DPM++ 2M", 6, 6.5, 11, 2)
    assert p["Schedule type"] in ("Karras", "Automatic")
    assert spec == r.specs[0].to_dict()
    assert sdlab.RunSpec.from_dict(spec).key() == r.specs[0].key()


def test_diffusers_engine_runs_a_scheduler_class(sd1):
    ours = gen(sd1, sampler="Euler", seeds=[1], steps=8)
    theirs = gen(sd1, sampler="diffusers:EulerDiscreteScheduler", seeds=[1], steps=8)
    assert theirs.latents.shape == ours.latents.shape and torch.isfinite(theirs.latents).all()
    karras = gen(sd1, sampler="diffusers:EulerDiscreteScheduler", seeds=[1], steps=8, use_karras_sigmas=True)
    assert not torch.equal(karras.latents, theirs.latents)
    anc = [gen(sd1, sampler="diffusers:EulerAncestralDiscreteScheduler", seeds=s, steps=8) for s in ([1, 2], [2])]
    assert torch.allclose(anc[0].latents[1], anc[1].latents[0], atol=1e-4)  # one generator per image


def test_timestep_samplers_use_their_own_grid(sd1):
    sigmas, name = schedule_for("DDIM", "Automatic", 10, sd1)
    assert name == "ddim timesteps" and float(sigmas[-1]) > 0
    r = gen(sd1, sampler="DDIM", seeds=[0], steps=10)
    assert torch.isfinite(r.images).all()


def test_a1111_lcm_runs_on_lcm_timesteps(sd1, monkeypatch):
    """A1111's "LCM": schedules span the 50 LCM sigmas and the UNet only sees timesteps 19, 39, ..., 999."""
    from sdlab.models.denoisers import DiffusersUNet, LCMEpsDenoiser

    lcm_table = LCMEpsDenoiser(None, sd1.sigmas)
    karras, _ = schedule_for("LCM", "Karras", 4, sd1)
    assert float(karras[0]) == pytest.approx(float(sd1.sigmas[-1]))
    assert float(karras[-2]) == pytest.approx(float(sd1.sigmas[19]))  # sigma_min is the sigma at t = 19
    auto, name = schedule_for("LCM", "Automatic", 4, sd1)
    expected = lcm_table.t_to_sigma(torch.linspace(999, 19, 4))
    assert name == "uniform"
    torch.testing.assert_close(auto[:-1].float(), expected.float(), rtol=1e-5, atol=0)
    comfy, _ = schedule_for("lcm", "Karras", 4, sd1)  # ComfyUI's lcm keeps the model's own range
    assert float(comfy[-2]) == pytest.approx(float(sd1.sigmas[0]))

    seen = []
    call = DiffusersUNet.__call__
    monkeypatch.setattr(DiffusersUNet, "__call__", lambda self, x, t, **kw: seen.append(t) or call(self, x, t, **kw))
    r = gen(sd1, sampler="LCM", seeds=[0], steps=4)
    assert torch.isfinite(r.images).all() and len(seen) == 4
    assert {int(v) for t in seen for v in t} <= set(range(19, 1000, 20))


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"steps": 0}, "steps"),
        ({"steps": 100000}, "steps"),
        ({"size": (30, 32)}, "multiples of 8"),
        ({"size": "big"}, "WIDTHxHEIGHT"),
        ({"cfg": float("nan")}, "CFG"),
        ({"sampler": "Eular a"}, "did you mean"),
        ({"schedule": "karas"}, "karras"),
        ({"seeds": []}, "seed"),
        ({"seeds": [-1]}, "seed"),
        ({"sampler": "Euler", "eta": 0.3}, "does not take"),
        ({"end_step": 99}, "end_step"),
    ],
)
def test_bad_input_gets_one_clear_error(sd1, kw, match):
    with pytest.raises(SdlabError, match=match):
        gen(sd1, **kw)


def test_cli_reports_errors_in_one_line(capsys):
    from sdlab.cli import main

    assert main(["generate", "--prompt", "x", "--sampler", "Eular a", "--out", "/tmp/never"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sdlab: error:") and "\n" not in err and "Euler a" in err
