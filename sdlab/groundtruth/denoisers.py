"""Exact denoisers: the posterior mean E[x0 | x] of a known distribution, as a k-diffusion model.

With data x0 ~ p and x = x0 + sigma * noise, the best possible denoiser is D(x, sigma) = E[x0 | x]. For a
Gaussian mixture (and for a finite dataset, a mixture of deltas) it has a closed form, so the probability-flow
ODE dx/dsigma = (x - D(x, sigma)) / sigma has a true solution, free of any network error.

>>> gmm = toy_mixture()                        # 6 anisotropic Gaussians in 2-D, data scale ~1
>>> x = gmm.sample(4, torch.Generator().manual_seed(0)) + 0.5 * torch.randn(4, 2, dtype=torch.float64)
>>> gmm(x, torch.full((4,), 0.5, dtype=torch.float64)).shape     # E[x0 | x] at sigma 0.5
torch.Size([4, 2])
>>> round(gmm.sigma_min, 4), round(gmm.sigma_max, 4)  # SD's training range: A1111 schedules work unchanged
(0.0292, 14.6146)

Both classes take any ``x`` of shape ``(B, *dims)`` (flattened to ``(B, D)`` inside) in float32 or float64,
carry SD's training sigma table (``.sigmas``, ascending; override with ``sigmas=``) with ``sigma_min`` /
``sigma_max`` / ``sigma_to_t`` / ``t_to_sigma`` so A1111's timestep samplers run on them, and count their
calls in ``.nfe`` (one per batched evaluation, the usual meaning of NFE).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sdlab.embedded.training.dataset import SIZE, make_dataset
from sdlab.errors import SdlabError
from sdlab.schedules.table import sd_training_sigmas, sigma_to_t, t_to_sigma

__all__ = ["GaussianMixture", "IdealDenoiser", "toy_mixture"]

_DIRECT_LIMIT = 1 << 22  # B * K * D elements below which squared distances are formed directly (most exact)


def _training_table(sigmas: Tensor | None) -> Tensor:
    table = sd_training_sigmas() if sigmas is None else torch.as_tensor(sigmas)
    table = table.detach().to("cpu", torch.float64).flatten()
    if len(table) < 2 or not bool((table > 0).all()) or not bool((table[1:] > table[:-1]).all()):
        raise SdlabError("sigmas must be an ascending table of >= 2 positive values", hint="e.g. sd_training_sigmas()")
    return table


def _sq_dist(x: Tensor, means: Tensor, inv_var: Tensor) -> Tensor:
    """sum_d (x_bd - mean_kd)^2 * inv_var_kd, shape (B, K); direct when small, else by matrix products."""
    B, K, D = x.shape[0], means.shape[0], means.shape[1]
    if B * K * D <= _DIRECT_LIMIT:
        return ((x[:, None, :] - means[None]) ** 2 * inv_var[None]).sum(-1)
    return (x**2) @ inv_var.T - 2 * x @ (means * inv_var).T + (means**2 * inv_var).sum(-1)


class _MixtureDenoiser:
    """Shared machinery: a mixture of Gaussians N(mean_k, diag(var_k)) with log weights, noised by sigma."""

    def __init__(self, means: Tensor, var: Tensor, log_weights: Tensor, sigmas: Tensor | None) -> None:
        self.means = means
        self.var = var  # (K, D), zeros for deltas
        self.log_weights = log_weights  # (K,), normalised
        self.sigmas = _training_table(sigmas)
        self.sigma_min = float(self.sigmas[0])
        self.sigma_max = float(self.sigmas[-1])
        self.nfe = 0

    @property
    def dim(self) -> int:
        """Dimension D of the data."""
        return int(self.means.shape[1])

    def sigma_to_t(self, sigma: Tensor) -> Tensor:
        """Continuous timestep of ``sigma`` on the training table (k-diffusion ``DiscreteSchedule.sigma_to_t``)."""
        flat = torch.as_tensor(sigma, dtype=torch.float64).flatten()
        return torch.tensor([sigma_to_t(self.sigmas, float(s)) for s in flat], dtype=torch.float64)

    def t_to_sigma(self, t: Tensor) -> Tensor:
        """The sigma of (fractional) timestep ``t``: log-sigma interpolated over the training table."""
        return t_to_sigma(self.sigmas, torch.as_tensor(t))

    def _flat(self, x: Tensor, sigma: Tensor | float) -> tuple[Tensor, Tensor]:
        if not isinstance(x, Tensor) or x.ndim < 1 or x[0].numel() != self.dim:
            raise SdlabError(
                "x must be a tensor (B, *dims) with prod(dims) equal to the data dimension",
                shape=tuple(getattr(x, "shape", ())),
                dim=self.dim,
                hint=f"reshape to (B, {self.dim})",
            )
        xf = x.reshape(x.shape[0], self.dim)
        s = torch.as_tensor(sigma, dtype=xf.dtype, device=xf.device).flatten()
        if s.numel() == 1:
            s = s.expand(xf.shape[0])
        if s.numel() != xf.shape[0]:
            raise SdlabError("sigma must be a scalar or one value per batch item", batch=xf.shape[0], got=s.numel())
        if not bool(torch.isfinite(s).all()) or bool((s < 0).any()):
            raise SdlabError("sigma must be finite and >= 0", sigma=s.tolist()[:4])
        return xf, s

    def _groups(self, s: Tensor) -> list[tuple[Tensor, float]]:
        """Batch indices sharing one sigma (samplers send one sigma for the whole batch)."""
        if bool((s == s[0]).all()):
            return [(torch.arange(len(s), device=s.device), float(s[0]))]
        values = torch.unique(s)
        return [((s == v).nonzero().flatten(), float(v)) for v in values]

    def _posterior(self, x: Tensor, sigma: float) -> tuple[Tensor, Tensor]:
        """(log p_sigma(x) per item, posterior weights (B, K)) for one sigma, in x's dtype."""
        means, var, logw = self.means.to(x), self.var.to(x), self.log_weights.to(x)
        v = var + sigma**2
        if bool((v <= 0).any()):
            raise SdlabError("a component with zero variance has no density at sigma 0", hint="use sigma > 0")
        logits = logw - 0.5 * _sq_dist(x, means, 1 / v) - 0.5 * torch.log(2 * math.pi * v).sum(-1)
        log_p = torch.logsumexp(logits, dim=1)
        return log_p, torch.exp(logits - log_p[:, None])

    def _mean_and_score(self, x: Tensor, sigma: float, want_score: bool) -> Tensor:
        means, var = self.means.to(x), self.var.to(x)
        if sigma == 0:
            if want_score:
                _, w = self._posterior(x, 0.0)
                return -x * (w @ (1 / var)) + w @ (means / var)
            if bool((var > 0).all()):
                return x.clone()  # no noise: E[x0 | x] = x for a density
            # deltas: the limit sigma -> 0 of the softmax is the nearest point
            return means[_sq_dist(x, means, torch.ones_like(means)).argmin(dim=1)]
        _, w = self._posterior(x, sigma)
        inv_v = 1 / (var + sigma**2)
        if want_score:  # grad log p_sigma = sum_k w_k (mean_k - x) / v_k
            return w @ (means * inv_v) - x * (w @ inv_v)
        # E[x0 | x, k] = mean_k + var_k / v_k (x - mean_k) = sigma^2 / v_k * mean_k + var_k / v_k * x
        return sigma**2 * (w @ (means * inv_v)) + x * (w @ (var * inv_v))

    def __call__(self, x: Tensor, sigma: Tensor, **cond: Any) -> Tensor:
        """The exact denoiser E[x0 | x] at noise level ``sigma`` (shape (B,) or scalar); same shape as ``x``."""
        self.nfe += 1
        xf, s = self._flat(x, sigma)
        out = torch.empty_like(xf)
        for idx, value in self._groups(s):
            out[idx] = self._mean_and_score(xf[idx], value, want_score=False)
        return out.reshape(x.shape)

    def score(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        """grad_x log p_sigma(x), the score of the noised distribution (= (D(x, sigma) - x) / sigma^2)."""
        xf, s = self._flat(x, sigma)
        out = torch.empty_like(xf)
        for idx, value in self._groups(s):
            out[idx] = self._mean_and_score(xf[idx], value, want_score=True)
        return out.reshape(x.shape)

    def log_density(self, x: Tensor, sigma: Tensor | float = 0.0) -> Tensor:
        """log p_sigma(x): the density of x0 + sigma * noise at ``x``, shape (B,)."""
        xf, s = self._flat(x, sigma)
        out = xf.new_empty(xf.shape[0])
        for idx, value in self._groups(s):
            out[idx] = self._posterior(xf[idx], value)[0]
        return out

    def posterior_weights(self, x: Tensor, sigma: float) -> Tensor:
        """p(component k | x) at noise level ``sigma``, shape (B, K): which component (or data point) x came from."""
        xf, _ = self._flat(x, sigma)
        return self._posterior(xf, float(sigma))[1]


class GaussianMixture(_MixtureDenoiser):
    """A Gaussian mixture sum_k w_k N(mean_k, diag(std_k^2)) and its exact denoiser (the posterior mean).

    ``means`` (K, D); ``stds`` (K,) isotropic or (K, D) diagonal, all > 0; ``weights`` (K,) positive (normalised
    here, default uniform). The posterior mean is smooth at every sigma (0 included) and computed with
    log-sum-exp, so it is stable far from every component.

    >>> gmm = GaussianMixture([[0.0, 0.0], [2.0, 0.0]], [0.5, 0.2], [0.7, 0.3])
    >>> gmm(torch.tensor([[2.0, 0.0]], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64))
    tensor([[1.5495, 0.0000]], dtype=torch.float64)
    """

    def __init__(
        self,
        means: Any,
        stds: Any,
        weights: Any = None,
        *,
        sigmas: Tensor | None = None,
        name: str = "gaussian mixture",
    ) -> None:
        means = torch.as_tensor(np.asarray(means, dtype=np.float64))
        if means.ndim != 2 or means.shape[0] < 1:
            raise SdlabError("means must have shape (K, D)", shape=tuple(means.shape), hint="e.g. [[0, 0], [1, 1]]")
        K, D = means.shape
        stds = torch.as_tensor(np.asarray(stds, dtype=np.float64))
        if stds.shape == (K,):
            stds = stds[:, None].expand(K, D)
        if stds.shape != (K, D) or not bool((stds > 0).all()) or not bool(torch.isfinite(stds).all()):
            raise SdlabError(
                "stds must be positive, shape (K,) or (K, D)",
                shape=tuple(stds.shape),
                K=K,
                D=D,
                hint="for deltas use IdealDenoiser",
            )
        w = torch.full((K,), 1.0 / K, dtype=torch.float64) if weights is None else torch.as_tensor(weights)
        w = w.to(torch.float64).flatten()
        if w.shape != (K,) or not bool((w > 0).all()):
            raise SdlabError("weights must be K positive numbers", K=K, got=tuple(w.shape), hint="they are normalised")
        super().__init__(means, stds.contiguous() ** 2, (w / w.sum()).log(), sigmas)
        self.stds = stds.contiguous()
        self.weights = w / w.sum()
        self.name = name

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` exact draws x0 ~ p, float64 (n, D)."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return self.means[k] + self.stds[k] * z

    def __repr__(self) -> str:
        return f"GaussianMixture({self.name!r}, K={len(self.means)}, D={self.dim})"


class IdealDenoiser(_MixtureDenoiser):
    """The ideal denoiser of a finite dataset {y_i} (Karras et al. 2022, eq. 57): softmax(-|x - y_i|^2 / 2 sigma^2).

    The data distribution is the uniform mixture of deltas at the rows of ``data`` (N, D); its PF-ODE carries
    every noise sample onto one training point (a model that memorised its data). ``shape`` (optional) is the
    per-item shape (e.g. (3, 8, 8)) for showing samples as images.
    """

    def __init__(
        self, data: Any, *, sigmas: Tensor | None = None, shape: tuple[int, ...] | None = None, name: str = "dataset"
    ) -> None:
        data = torch.as_tensor(np.asarray(data, dtype=np.float64))
        if data.ndim != 2 or data.shape[0] < 1:
            raise SdlabError("data must have shape (N, D)", shape=tuple(data.shape), hint="flatten each item")
        N = data.shape[0]
        super().__init__(data, torch.zeros_like(data), torch.full((N,), -math.log(N), dtype=torch.float64), sigmas)
        self.data = data
        self.shape = tuple(shape) if shape is not None else (data.shape[1],)
        self.name = name

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws from the dataset (with replacement), float64 (n, D)."""
        return self.data[torch.randint(len(self.data), (n,), generator=generator)]

    def log_density(self, x: Tensor, sigma: Tensor | float = 0.0) -> Tensor:
        """log p_sigma(x) of the deltas convolved with N(0, sigma^2 I); defined for sigma > 0 only."""
        if float(torch.as_tensor(sigma).min()) <= 0:
            raise SdlabError("a mixture of deltas has no density at sigma 0", hint="pass sigma > 0")
        return super().log_density(x, sigma)

    @classmethod
    def from_scenes(cls, n: int = 300, size: int = 8, seed: int = 0, *, sigmas: Tensor | None = None) -> IdealDenoiser:
        """The ideal denoiser of ``n`` embedded-model training scenes, area-downsampled to ``size`` x ``size``.

        Items are RGB images in [-1, 1] flattened channel-first: D = 3 * size^2 (``.shape`` is (3, size, size)).
        """
        if not isinstance(size, int) or size < 1 or SIZE % size:
            raise SdlabError("size must divide the scene size", size=size, scene_size=SIZE, hint="e.g. 4, 8 or 16")
        images, _, _ = make_dataset(n, "train", seed)
        f = SIZE // size
        small = images.astype(np.float64).reshape(n, size, f, size, f, 3).mean(axis=(2, 4))
        data = (small / 127.5 - 1.0).transpose(0, 3, 1, 2).reshape(n, -1)
        return cls(data, sigmas=sigmas, shape=(3, size, size), name=f"{n} scenes at {size}x{size}")

    def __repr__(self) -> str:
        return f"IdealDenoiser({self.name!r}, N={len(self.data)}, D={self.dim})"


def toy_mixture(*, sigmas: Tensor | None = None) -> GaussianMixture:
    """The lab's 2-D test distribution: 6 anisotropic Gaussians of unequal weight, data scale ~1 (like SD latents).

    Component stds run from 0.08 to 0.35, so the PF-ODE bends sharply near sigma ~ 0.1-1 where trajectories pick
    a component, which is where samplers make their errors.
    """
    means = [[-1.2, 0.9], [-0.4, -1.1], [0.7, 1.3], [1.5, -0.3], [0.3, 0.1], [-1.6, -0.6]]
    stds = [[0.25, 0.12], [0.35, 0.15], [0.10, 0.30], [0.18, 0.18], [0.08, 0.08], [0.20, 0.35]]
    weights = [0.25, 0.20, 0.15, 0.15, 0.10, 0.15]
    return GaussianMixture(means, stds, weights, sigmas=sigmas, name="toy 2-D mixture")
