"""diffusers schedulers as a second engine: ``"diffusers:EulerAncestralDiscreteScheduler"``.

Runs any diffusers scheduler class on an sdlab denoiser, with the scheduler's own timesteps, initial noise scale
and noise draws, so a user can measure how the diffusers version of a sampler differs from A1111's. The scheduler
is built from the model's scheduler config (or SD 1.x's) plus the user's keyword arguments, with
``prediction_type="epsilon"``: sdlab's denoiser returns x0, from which the epsilon the scheduler expects is derived.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from sdlab.errors import SdlabError, closest
from sdlab.samplers.base import Callback, NoiseSampler
from sdlab.schedules.table import log_interp, sd1_table

__all__ = ["PREFIX", "make_scheduler", "scheduler_sigmas", "sample_diffusers"]

PREFIX = "diffusers:"
_SD_CONFIG = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
}


def make_scheduler(class_name: str, model: Any = None, **kwargs: Any) -> Any:
    """Instantiate ``diffusers.<class_name>`` from the model's scheduler config with ``kwargs`` on top."""
    import diffusers

    cls = getattr(diffusers, class_name, None)
    if cls is None or not hasattr(cls, "from_config"):
        names = [n for n in dir(diffusers) if n.endswith("Scheduler")]
        raise SdlabError(f"diffusers has no scheduler {class_name!r}", sampler=PREFIX + class_name,
                         hint=closest(class_name, names))  # fmt: skip
    pipe = getattr(model, "pipe", None)
    config = dict(pipe.scheduler.config) if pipe is not None else dict(_SD_CONFIG)
    config.update(kwargs)
    config["prediction_type"] = "epsilon"
    try:
        return cls.from_config(config)
    except (TypeError, ValueError) as exc:
        raise SdlabError(f"cannot build {class_name}: {exc}", sampler=PREFIX + class_name) from exc


def _t_to_sigma(model: Any, t: Tensor) -> Tensor:
    if hasattr(model, "t_to_sigma"):
        return model.t_to_sigma(t.float())
    table = sd1_table().log()
    return log_interp(table, t.float().clamp(0, len(table) - 1))


def scheduler_sigmas(class_name: str, steps: int, model: Any = None, **kwargs: Any) -> Tensor:
    """The VE sigmas of the scheduler's timesteps (then 0): where each of its model evaluations happens."""
    sched = make_scheduler(class_name, model, **kwargs)
    sched.set_timesteps(steps)
    return torch.cat([_t_to_sigma(model, sched.timesteps), torch.zeros(1)])


def sample_diffusers(
    model: Any,
    x: Tensor,
    sigmas: Tensor,
    *,
    scheduler_class: str,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
    generator: torch.Generator | list[torch.Generator] | None = None,
    **scheduler_kwargs: Any,
) -> Tensor:
    """Run a diffusers scheduler's loop on an sdlab denoiser; ``x`` is noise scaled to ``sigmas[0]``.

    The scheduler's latents start at ``noise * init_noise_sigma`` as in diffusers pipelines; its stochastic
    steps draw from ``generator`` (one per image for batch invariance). ``noise_sampler`` is not used: diffusers
    schedulers draw their own noise.
    """
    extra_args = extra_args or {}
    sched = make_scheduler(scheduler_class, model, **scheduler_kwargs)
    steps = len(sigmas) - 1
    sched.set_timesteps(steps, device=x.device)
    noise = x / sigmas[0]
    z = noise * sched.init_noise_sigma
    for i, t in enumerate(sched.timesteps):
        model_in = sched.scale_model_input(z, t)
        sigma = _t_to_sigma(model, t.reshape(1).cpu()).to(x)
        x_ve = model_in * (1 + sigma**2).sqrt()
        denoised = model(x_ve, sigma.expand(len(x)), **extra_args)
        eps = (x_ve - denoised) / sigma
        z = sched.step(eps, t, z, generator=generator).prev_sample
        if callback is not None:
            callback({"x": z, "i": i, "sigma": sigma, "sigma_hat": sigma, "denoised": denoised})
    return z
