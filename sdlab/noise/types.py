"""The one type every noise source has: ``noise_sampler(sigma, sigma_next) -> standard normal noise``."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

__all__ = ["NoiseSampler"]

NoiseSampler = Callable[[Tensor, Tensor], Tensor]
"""Fresh standard normal noise for the step ``sigma -> sigma_next``, shaped like the latent."""
