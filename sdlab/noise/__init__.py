"""Random numbers as A1111 draws them: per-image seeded noise, CUDA's Philox on any machine, Brownian trees.

Floor 1: imports nothing above :mod:`sdlab.errors`.

* :mod:`sdlab.noise.rng`: :class:`ImageRNG` (A1111's per-image generators, RNG sources "GPU", "CPU", "NV",
  ENSD, variation seeds, seed resize) and the noise samplers built on it.
* :mod:`sdlab.noise.philox`: :class:`PhiloxGenerator`, CUDA's ``torch.randn`` reproduced in NumPy.
* :mod:`sdlab.noise.brownian`: :class:`BrownianTreeNoiseSampler`, seeded as k-diffusion, A1111 and ComfyUI seed it.
* :mod:`sdlab.noise.types`: :data:`NoiseSampler`, ``(sigma, sigma_next) -> noise``.
"""

from sdlab.noise.brownian import BrownianTreeNoiseSampler
from sdlab.noise.philox import PhiloxGenerator, box_muller, philox4x32
from sdlab.noise.rng import (
    RNG_SOURCES,
    ImageRNG,
    brownian_noise_sampler,
    image_noise_sampler,
    sampler_uses_ensd,
    torchsde_randn_source,
)
from sdlab.noise.types import NoiseSampler

__all__ = [
    "ImageRNG",
    "RNG_SOURCES",
    "NoiseSampler",
    "image_noise_sampler",
    "brownian_noise_sampler",
    "BrownianTreeNoiseSampler",
    "PhiloxGenerator",
    "philox4x32",
    "box_muller",
    "torchsde_randn_source",
    "sampler_uses_ensd",
]
