"""Discrete-time Stable Diffusion UNets as k-diffusion denoisers, and A1111's classifier-free guidance.

A UNet trained on ``T`` discrete DDPM timesteps predicts the noise (eps) or the velocity (v) of the
variance-preserving input ``z = x / sqrt(sigma^2 + 1)``. k-diffusion's ``external.py`` (used by A1111 for
every k-diffusion sampler) turns it into a denoiser ``D(x, sigma) -> x0`` in variance-exploding scaling:

* ``sigma -> t``: interpolate linearly in log-sigma between the two nearest entries of the training
  sigma table (or snap to the nearest with ``quantize=True``: A1111's "enable_quantization" setting);
* eps: ``D = x - sigma * eps(c_in * x, t)``; v: ``D = c_skip * x + c_out * v(c_in * x, t)`` with
  ``c_in = 1/sqrt(sigma^2 + 1)``, ``c_skip = 1/(sigma^2 + 1)``, ``c_out = -sigma/sqrt(sigma^2 + 1)``.

>>> import torch
>>> sigmas = training_sigmas({"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012})
>>> D = DiscreteEpsDenoiser(lambda x, t: torch.zeros_like(x), sigmas)   # predicts no noise
>>> x = torch.ones(1, 4, 8, 8)
>>> bool(torch.equal(D(x, torch.tensor([2.0])), x))                    # so x is already clean
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from sdlab.errors import SdlabError, closest
from sdlab.samplers.base import append_dims
from sdlab.schedules.table import log_interp, sigma_bracket, training_alphas_cumprod, training_sigmas

__all__ = [
    "UNetLike",
    "training_alphas_cumprod",
    "training_sigmas",
    "DiscreteSchedule",
    "DiscreteEpsDenoiser",
    "DiscreteVDenoiser",
    "LCMEpsDenoiser",
    "CFGDenoiser",
    "DiffusersUNet",
    "PAD_MODES",
]

UNetLike = Callable[..., Tensor]
"""Anything called as ``unet(x_scaled, t, **cond) -> eps or v`` (``t`` a float tensor of timesteps)."""

PAD_MODES = ("none", "empty", "v0")


class DiscreteSchedule:
    """Maps continuous sigmas to fractional training timesteps and back (k-diffusion ``DiscreteSchedule``).

    The search and the formula are :mod:`sdlab.schedules.table`'s, here in the table's own dtype (float32).
    """

    def __init__(self, sigmas: Tensor, *, quantize: bool = False) -> None:
        sigmas = torch.as_tensor(sigmas)
        if sigmas.ndim != 1 or len(sigmas) < 2 or not bool((sigmas[1:] > sigmas[:-1]).all()):
            raise SdlabError(
                "the training sigma table must be 1-D, ascending, with >= 2 entries", shape=tuple(sigmas.shape)
            )
        self.sigmas = sigmas
        self.log_sigmas = sigmas.log()
        self.quantize = quantize  # A1111's "enable_quantization": snap sigma to the nearest timestep

    @property
    def sigma_min(self) -> Tensor:
        return self.sigmas[0]

    @property
    def sigma_max(self) -> Tensor:
        return self.sigmas[-1]

    def sigma_to_t(self, sigma: Tensor, quantize: bool | None = None) -> Tensor:
        """Fractional timestep whose log-sigma interpolates the table linearly (or the nearest index)."""
        quantize = self.quantize if quantize is None else quantize
        log_sigmas = self.log_sigmas.to(sigma.device)
        if quantize:
            return (sigma.log() - log_sigmas[:, None]).abs().argmin(dim=0).view(sigma.shape)
        low, w = sigma_bracket(log_sigmas, sigma.log())
        return ((1 - w) * low + w * (low + 1)).view(sigma.shape)  # k-diffusion's arithmetic, bit for bit

    def t_to_sigma(self, t: Tensor) -> Tensor:
        """Sigma at a fractional timestep, interpolating log-sigma linearly."""
        t = t.float()
        return log_interp(self.log_sigmas.to(t.device), t)


class DiscreteUNetDenoiser(DiscreteSchedule):
    """A UNet on the training timesteps of ``sigmas``: what the eps and v denoisers share."""

    def __init__(self, unet: UNetLike, sigmas: Tensor, *, quantize: bool = False) -> None:
        super().__init__(sigmas, quantize=quantize)
        self.inner_model = unet


class DiscreteEpsDenoiser(DiscreteUNetDenoiser):
    """An eps-prediction UNet as ``D(x, sigma) = x - sigma * eps(x / sqrt(sigma^2 + 1), t)`` (k-diffusion)."""

    def __call__(self, x: Tensor, sigma: Tensor, **cond: Any) -> Tensor:
        sigma_ = append_dims(sigma, x.ndim)
        c_in = 1 / (sigma_**2 + 1) ** 0.5
        eps = self.inner_model(x * c_in, self.sigma_to_t(sigma), **cond)
        return x - eps * sigma_


class DiscreteVDenoiser(DiscreteUNetDenoiser):
    """A v-prediction UNet (SD 2.x 768-v) as ``D = c_skip * x + c_out * v(c_in * x, t)`` (k-diffusion)."""

    def __call__(self, x: Tensor, sigma: Tensor, **cond: Any) -> Tensor:
        sigma_ = append_dims(sigma, x.ndim)
        c_skip = 1 / (sigma_**2 + 1)
        c_out = -sigma_ / (sigma_**2 + 1) ** 0.5
        c_in = 1 / (sigma_**2 + 1) ** 0.5
        v = self.inner_model(x * c_in, self.sigma_to_t(sigma), **cond)
        return x * c_skip + v * c_out


class LCMEpsDenoiser(DiscreteSchedule):
    """A1111's denoiser for its "LCM" sampler (``LCMCompVisDenoiser``): an eps UNet on LCM's 50 timesteps.

    A latent consistency model is distilled on ``original_steps`` = 50 of the ``T`` training timesteps,
    ``t_k = T - 1 - (49 - k) * skip`` with ``skip = T // 50`` (19, 39, ..., 999 for SD). So:

    * the sigma table is those 50 sigmas: schedules get their range from it (``sigma_min`` is the sigma at
      t = 19, not t = 0), and "Uniform"/"Normal" space timesteps evenly from 999 down to 19;
    * ``sigma_to_t`` always snaps to the nearest of the 50 timesteps;
    * the eps prediction gives ``x0 = x - sigma * eps`` (sigma as asked, not snapped), then the consistency
      boundary condition blends it with the input: ``D = c_out * x0 + c_skip * x`` with ``s = 10 t``,
      ``c_skip = 0.25 / (s^2 + 0.25)``, ``c_out = s / sqrt(s^2 + 0.25)`` (sigma_data 0.5).

    On a model that is not LCM-distilled this still is what A1111 runs when "LCM" is picked.
    """

    def __init__(self, unet: UNetLike, sigmas: Tensor, *, original_steps: int = 50) -> None:
        sigmas = torch.as_tensor(sigmas)
        n_train = len(sigmas)
        skip = n_train // original_steps
        if skip < 1:
            raise SdlabError(
                "the training table is shorter than LCM's timesteps",
                training_steps=n_train,
                original_steps=original_steps,
            )
        self.timesteps = torch.tensor([n_train - 1 - k * skip for k in reversed(range(original_steps))])
        self.skip = skip
        super().__init__(sigmas[self.timesteps], quantize=True)
        self.inner_model = unet

    def sigma_to_t(self, sigma: Tensor, quantize: bool | None = None) -> Tensor:
        """The training timestep of the nearest of the 50 LCM sigmas (always snapped)."""
        nearest = super().sigma_to_t(sigma, quantize=True)  # index into the 50 LCM sigmas
        return self.timesteps.to(sigma.device)[nearest]

    def t_to_sigma(self, t: Tensor) -> Tensor:
        """Sigma at training timestep ``t``, interpolating log-sigma between the 50 LCM timesteps."""
        k = ((t.float() - float(self.timesteps[0])) / self.skip).clamp(0, len(self.sigmas) - 1)
        return super().t_to_sigma(k)

    def __call__(self, x: Tensor, sigma: Tensor, **cond: Any) -> Tensor:
        sigma_ = append_dims(sigma, x.ndim)
        t = self.sigma_to_t(sigma)
        eps = self.inner_model(x / (sigma_**2 + 1) ** 0.5, t, **cond)
        x0 = x - eps * sigma_
        s = append_dims(t.to(x.dtype), x.ndim) * 10.0
        c_skip = 0.25 / (s**2 + 0.25)
        c_out = s / (s**2 + 0.25) ** 0.5
        return x0 * c_out + x * c_skip


class DiffusersUNet:
    """A diffusers ``UNet2DConditionModel`` as ``unet(x, t, encoder_hidden_states=..., [text_embeds, time_ids])``.

    Inputs are cast to the UNet's device and dtype, the output back to ``x``'s (A1111 likewise runs the
    UNet in fp16 and does the denoiser arithmetic in fp32). ``text_embeds``/``time_ids`` are SDXL's pooled
    text embedding and size conditioning.
    """

    def __init__(self, unet: Any) -> None:
        self.unet = unet

    def __call__(
        self,
        x: Tensor,
        t: Tensor,
        *,
        encoder_hidden_states: Tensor,
        text_embeds: Tensor | None = None,
        time_ids: Tensor | None = None,
    ) -> Tensor:
        weight = next(self.unet.parameters())  # its device and dtype: diffusers' .device/.dtype walk every
        device, dtype = weight.device, weight.dtype  # parameter (10 ms a step for SDXL on this CPU)
        added = None
        if text_embeds is not None:
            added = {"text_embeds": text_embeds.to(device, dtype), "time_ids": time_ids.to(device, dtype)}
        out = self.unet(
            x.to(device, dtype),
            t.to(device),
            encoder_hidden_states=encoder_hidden_states.to(device, dtype),
            added_cond_kwargs=added,
            return_dict=False,
        )[0]
        return out.to(x.device, x.dtype)


def _batch(cond: Mapping[str, Tensor], n: int) -> dict[str, Tensor]:
    """Repeat batch-1 conditioning to ``n`` rows (one prompt for many seeds); other sizes must match."""
    out = {}
    for key, value in cond.items():
        if value.shape[0] == n:
            out[key] = value
        elif value.shape[0] == 1:
            out[key] = value.expand(n, *value.shape[1:])
        else:
            raise SdlabError(
                "conditioning batch does not match the latent batch",
                key=key,
                cond_batch=value.shape[0],
                latent_batch=n,
                hint="encode one prompt per latent, or a single prompt for all",
            )
    return out


class CFGDenoiser:
    """A1111's classifier-free guidance (``sd_samplers_cfg_denoiser.CFGDenoiser``) around a k-diffusion denoiser.

    ``denoised = uncond + (cond - uncond) * cfg_scale``, with cond and uncond evaluated in one batched
    forward pass. ``cond``/``uncond`` are the keyword arguments of ``inner`` (``encoder_hidden_states`` and,
    for SDXL, ``text_embeds``/``time_ids``), batch 1 or the latent batch.

    * Every call counts one model evaluation in ``self.nfe`` (batched or not) and sets
      ``self.last_uncond_denoised`` (read by the CFG++ samplers).
    * ``cfg_scale == 1``: the uncond pass is skipped and ``denoised`` is the cond prediction (A1111 computes
      ``uncond + (cond - uncond) * 1``, the same up to float rounding); ``last_uncond_denoised`` is then the
      cond prediction, as in A1111 when it skips the uncond pass.
    * Prompts of different lengths (a multiple of 77 tokens each): ``pad="none"`` (A1111's default) runs
      cond and uncond as two separate forward passes; ``pad="empty"`` (A1111's "Pad prompt/negative prompt"
      option) appends copies of ``empty``, the 77-token encoding of the empty prompt, to the shorter one;
      ``pad="v0"`` (A1111's "pad_cond_uncond_v0", DDIM's behaviour before 1.6.0) repeats the uncond's last
      token vector or truncates it to the cond's length. Both padded modes then batch as usual.
    """

    def __init__(
        self,
        inner: Any,
        cond: Mapping[str, Tensor],
        uncond: Mapping[str, Tensor] | None,
        cfg_scale: float,
        *,
        pad: str = "none",
        empty: Tensor | None = None,
    ) -> None:
        if pad not in PAD_MODES:
            raise SdlabError(f"unknown pad mode {pad!r}", pad=pad, hint=closest(pad, PAD_MODES))
        if pad == "empty" and empty is None:
            raise SdlabError("pad='empty' needs the empty prompt's encoding", hint="pass empty=conditioning.empty")
        if uncond is None and cfg_scale != 1:
            raise SdlabError("guidance needs an uncond", cfg_scale=cfg_scale, hint="pass uncond or cfg_scale=1")
        self.inner_model = inner
        self.cond = dict(cond)
        self.uncond = None if uncond is None else dict(uncond)
        self.cfg_scale = float(cfg_scale)
        self.pad = pad
        self.empty = empty
        self.nfe = 0
        self.last_uncond_denoised: Tensor | None = None

    # The discrete schedule of the wrapped denoiser, for schedules and samplers that need it.
    def __getattr__(self, name: str) -> Any:
        if name in ("sigmas", "log_sigmas", "sigma_min", "sigma_max", "sigma_to_t", "t_to_sigma", "quantize"):
            return getattr(self.__dict__.get("inner_model"), name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _match_lengths(self, cond: dict[str, Tensor], uncond: dict[str, Tensor]) -> None:
        key = "encoder_hidden_states"
        c, u = cond[key], uncond[key]
        if c.shape[1] == u.shape[1] or self.pad == "none":
            return
        if self.pad == "v0":
            if u.shape[1] < c.shape[1]:
                uncond[key] = torch.cat([u, u[:, -1:].expand(-1, c.shape[1] - u.shape[1], -1)], dim=1)
            else:
                uncond[key] = u[:, : c.shape[1]]
            return
        empty = self.empty.to(c.device, c.dtype)
        repeats = (c.shape[1] - u.shape[1]) // empty.shape[1]
        if repeats > 0:
            uncond[key] = torch.cat([u, empty.expand(u.shape[0], -1, -1).repeat(1, repeats, 1)], dim=1)
        elif repeats < 0:
            cond[key] = torch.cat([c, empty.expand(c.shape[0], -1, -1).repeat(1, -repeats, 1)], dim=1)

    def __call__(self, x: Tensor, sigma: Tensor, **extra: Any) -> Tensor:
        n = x.shape[0]
        sigma = sigma.expand(n) if sigma.ndim == 0 else sigma
        self.nfe += 1
        cond = _batch(self.cond, n)
        if self.cfg_scale == 1:  # no guidance: skip the uncond pass
            denoised = self.inner_model(x, sigma, **cond, **extra)
            self.last_uncond_denoised = denoised
            return denoised
        uncond = _batch(self.uncond, n)
        self._match_lengths(cond, uncond)
        if all(cond[k].shape == uncond[k].shape for k in cond):
            both = {k: torch.cat([cond[k], uncond[k]]) for k in cond}
            out = self.inner_model(torch.cat([x, x]), torch.cat([sigma, sigma]), **both, **extra)
            cond_denoised, uncond_denoised = out[:n], out[n:]
        else:  # prompts of different lengths cannot share a batch (A1111 without padding)
            cond_denoised = self.inner_model(x, sigma, **cond, **extra)
            uncond_denoised = self.inner_model(x, sigma, **uncond, **extra)
        self.last_uncond_denoised = uncond_denoised
        return uncond_denoised + (cond_denoised - uncond_denoised) * self.cfg_scale
