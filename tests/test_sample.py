"""sdlab.sample: any sampler by name on any k-diffusion-convention denoiser."""

import pytest
import torch

import sdlab
from sdlab import SdlabError
from sdlab.samplers.catalogue import A1111_SAMPLERS, resolve_sampler


class Gaussian:
    """Exact denoiser of N(mu, s^2 I) data, with an SD-like discrete sigma table."""

    def __init__(self, mu: torch.Tensor, s: float = 0.5):
        self.mu, self.s = mu, s
        from sdlab.schedules import sd_training_sigmas

        self.sigmas = sd_training_sigmas()
        self.sigma_min, self.sigma_max = float(self.sigmas[0]), float(self.sigmas[-1])

    def __call__(self, x, sigma, **cond):
        s2, sg2 = self.s**2, sigma.to(x)[:, None, None, None] ** 2
        return (s2 * x + sg2 * self.mu) / (s2 + sg2)


@pytest.fixture
def model():
    return Gaussian(torch.linspace(-1, 1, 64).reshape(1, 4, 4, 4))


def _noise(n=2, seed=0):
    return torch.randn(n, 4, 4, 4, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", list(A1111_SAMPLERS))
def test_every_a1111_sampler_runs_by_name_and_lands_near_the_data(model, name):
    from sdlab.generation import schedule_for

    sigmas, _ = schedule_for(name, "Automatic", 12, model)
    x = sdlab.sample(model, _noise() * sigmas[0], sigmas, name, seeds=[1, 2])
    assert x.shape == (2, 4, 4, 4) and torch.isfinite(x).all()
    # samples of N(mu, 0.25 I): within a few standard deviations of mu
    assert (x - model.mu).abs().mean() < 1.5


def test_name_defaults_can_be_overridden_and_unknown_options_are_refused(model):
    sigmas = sdlab.get_sigmas("karras", 8, model)
    x0 = _noise() * sigmas[0]
    a = sdlab.sample(model, x0, sigmas, "Euler a", eta=0.0)
    b = sdlab.sample(model, x0, sigmas, "Euler")
    assert torch.equal(a, b)  # Euler a at eta 0 is Euler
    with pytest.raises(SdlabError, match="does not take option"):
        sdlab.sample(model, x0, sigmas, "Euler", eta=0.5)


def test_seeded_noise_is_per_image(model):
    sigmas = sdlab.get_sigmas("karras", 8, model)
    x = _noise(3) * sigmas[0]
    both = sdlab.sample(model, x, sigmas, "Euler a", seeds=[5, 6, 7])
    one = sdlab.sample(model, x[1:2], sigmas, "Euler a", seeds=[6])
    assert torch.equal(both[1:2], one)


def test_nan_reports_sampler_step_and_sigma(model):
    sigmas = sdlab.get_sigmas("karras", 6, model)

    def broken(x, sigma, **cond):
        out = model(x, sigma)
        return out * float("nan") if float(sigma[0]) < 1.0 else out

    with pytest.raises(SdlabError, match="NaN") as err:
        sdlab.sample(broken, _noise() * sigmas[0], sigmas, "DPM++ 2M")
    assert err.value.context["sampler"] == "DPM++ 2M"
    assert err.value.context["step"] is not None and err.value.context["sigma"] < 1.0


def test_bad_sigmas_are_refused(model):
    with pytest.raises(SdlabError, match="must not increase"):
        sdlab.sample(model, _noise(), torch.tensor([1.0, 2.0, 0.0]), "Euler")
    with pytest.raises(SdlabError, match="1-D"):
        sdlab.sample(model, _noise(), torch.tensor([1.0]), "Euler")


def test_custom_sampler_function_is_accepted(model):
    def plain_euler(model, x, sigmas, *, extra_args=None, callback=None, noise_sampler=None):
        for i in range(len(sigmas) - 1):
            d = (x - model(x, sigmas[i] * x.new_ones(len(x)))) / sigmas[i]
            x = x + d * (sigmas[i + 1] - sigmas[i])
        return x

    sigmas = sdlab.get_sigmas("karras", 8, model)
    x0 = _noise() * sigmas[0]
    assert torch.allclose(sdlab.sample(model, x0, sigmas, plain_euler), sdlab.sample(model, x0, sigmas, "euler"))


def test_deterministic_samplers_are_bit_identical_on_rerun(model):
    from sdlab.generation import schedule_for

    for info_name in ("DPM++ 2M", "Heun", "LMS", "DPM2", "UniPC", "DDIM", "PLMS", "DPM adaptive"):
        r = resolve_sampler(info_name)
        sigmas, _ = schedule_for(r, "Automatic", 10, model)
        x0 = _noise() * sigmas[0]
        kw = {"eta": 0.0} if "eta" in r.options else {}
        a = sdlab.sample(model, x0.clone(), sigmas, r, **kw)
        b = sdlab.sample(model, x0.clone(), sigmas, r, **kw)
        assert torch.equal(a, b), info_name


def test_rng_names_the_generator_and_rng_source_still_works(model):
    sigmas = sdlab.get_sigmas("karras", 4, model)
    x = _noise() * sigmas[0]
    new = sdlab.sample(model, x, sigmas, "Euler a", seeds=[1, 2], rng="CPU")
    with pytest.warns(DeprecationWarning, match="rng="):
        old = sdlab.sample(model, x, sigmas, "Euler a", seeds=[1, 2], rng_source="CPU")
    assert torch.equal(new, old)


def test_finite_guard_reads_its_flags_at_the_end():
    from sdlab.samplers import FiniteGuard

    seen = []
    guard = FiniteGuard(seen.append, "Euler")
    good, bad = torch.zeros(1, 2), torch.full((1, 2), float("nan"))
    guard({"x": good, "denoised": good, "i": 0, "sigma": torch.tensor([2.0])})
    guard({"x": good, "denoised": bad, "i": 1, "sigma": torch.tensor([1.0])})
    guard({"x": bad, "denoised": bad, "i": 2, "sigma": torch.tensor([0.5])})
    assert len(seen) == 3  # no raise during the steps
    with pytest.raises(SdlabError, match="'denoised'") as err:
        guard.check()
    assert err.value.context["step"] == 1 and err.value.context["sigma"] == 1.0


def test_a_denoiser_without_a_count_gives_unknown_nfe():
    from sdlab.generation import evaluations

    assert evaluations(object()) is None
    counted = type("Counted", (), {"nfe": 3})()
    assert evaluations(counted) == 3
