"""Brownian-tree noise for the SDE samplers, seeded the way k-diffusion, A1111 and ComfyUI seed it.

A stochastic step from ``sigma`` to ``sigma_next`` needs standard normal noise. Taking it as the scaled
increment of one fixed Brownian path, ``(W(t1) - W(t0)) / sqrt|t1 - t0|``, instead of a fresh ``randn``,
makes the noise a function of the noise *interval*: the same seed then gives nearly the same picture at
20 or 40 steps, which is why DPM++ SDE images converge as steps grow. ``torchsde.BrownianTree`` can be
queried at any time pair in any order and always returns the same path for the same ``entropy``.

>>> x = torch.zeros(2, 4, 8, 8)
>>> noise = BrownianTreeNoiseSampler(x, 0.03, 14.6, seed=[1, 2])  # one tree per image, as A1111
>>> noise(torch.tensor(14.6), torch.tensor(10.0)).shape  # standard normal, shaped like x
torch.Size([2, 4, 8, 8])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from sdlab.errors import SdlabError

__all__ = ["BrownianTreeNoiseSampler"]


def _identity(sigma: Tensor) -> Tensor:
    return sigma


class BrownianTreeNoiseSampler:
    """Noise for ``sigma -> sigma_next`` from seeded Brownian trees (k-diffusion's ``BrownianTreeNoiseSampler``).

    ``seed``: ``None`` draws one seed from the global torch RNG (k-diffusion's default); an ``int`` gives a
    single tree for the whole batch (ComfyUI), so an image's noise depends on the batch size; a list of
    ints, one per batch item, gives one tree per item (A1111), so it does not. ``transform`` maps sigma to
    the tree's time axis (identity by default). ``cpu=True`` keeps the trees on the CPU whatever ``x``'s
    device (ComfyUI's samplers; the same numbers on any GPU), ``cpu=False`` builds them on ``x``'s device
    (k-diffusion). For CPU tensors the two are the same.
    """

    def __init__(
        self,
        x: Tensor,
        sigma_min: float | Tensor,
        sigma_max: float | Tensor,
        *,
        seed: int | Sequence[int] | None = None,
        transform: Callable[[Tensor], Tensor] = _identity,
        cpu: bool = True,
    ) -> None:
        import torchsde  # light, but only the SDE samplers need it

        self.transform = transform
        self.device = x.device
        t0, t1 = transform(torch.as_tensor(sigma_min)), transform(torch.as_tensor(sigma_max))
        t_lo, t_hi, self.sign = (t0, t1, 1) if t0 < t1 else (t1, t0, -1)
        self.bounds = round(float(t_lo), 6), round(float(t_hi), 6)  # torchsde keeps times to 6 decimals (tol=1e-6)
        if seed is None:
            seed = torch.randint(0, 2**63 - 1, []).item()  # consumes the global RNG like k-diffusion
        self.batched = isinstance(seed, Sequence)
        w0 = torch.zeros_like(x, device="cpu" if cpu else x.device)
        if self.batched:
            if len(seed) != x.shape[0]:
                raise SdlabError(
                    "need one Brownian-tree seed per batch item",
                    hint="pass seed=[seed_0, ..., seed_{B-1}] or a single int",
                    seeds=len(seed),
                    batch=x.shape[0],
                )
            seeds, w0 = [int(s) for s in seed], w0[0]
        else:
            seeds = [int(seed)]
        self.trees = [torchsde.BrownianTree(t_lo, w0, t_hi, entropy=s) for s in seeds]

    def _snap(self, t: float) -> float:
        """Move a time within the trees' resolution (1e-6) outside their interval onto its end, as torchsde does.

        Sigmas that are not multiples of 1e-6, and the samplers' sigma -> log -> exp round trips, land
        there, and torchsde would warn on every step; farther out it still warns.
        """
        lo, hi = self.bounds
        if lo - 1e-6 * (1 + abs(lo)) <= t < lo:
            return lo
        if hi < t <= hi + 1e-6 * (1 + abs(hi)):
            return hi
        return t

    def __call__(self, sigma: float | Tensor, sigma_next: float | Tensor) -> Tensor:
        """Standard normal noise: the path's increment over the interval, divided by its standard deviation."""
        t0, t1 = self.transform(torch.as_tensor(sigma)), self.transform(torch.as_tensor(sigma_next))
        t_lo, t_hi, sign = (t0, t1, 1) if t0 < t1 else (t1, t0, -1)
        t_lo, t_hi = self._snap(float(t_lo)), self._snap(float(t_hi))
        w = torch.stack([tree(t_lo, t_hi) for tree in self.trees]) * (self.sign * sign)
        w = (w if self.batched else w[0]).to(self.device)
        return w / (t1 - t0).abs().sqrt()
