"""Per-image noise with A1111's seeds and RNG sources (``modules/rng.py``, v1.10).

Every image of a batch has its own generator, seeded with its own seed, so an image never depends on the
batch size or its position in the batch. The first draw is the initial latent noise; later draws are the
fresh noise of ancestral samplers (A1111 routes k-diffusion's ``torch.randn_like`` to them).

RNG sources (A1111's "Random number generator source" setting, infotext key "RNG"):

* ``"GPU"`` (A1111's default): ``torch.randn`` on the model's device with a per-image generator. On a CPU
  device this is the CPU generator; on MPS A1111 falls back to the CPU generator, and so does sdlab.
* ``"CPU"``: ``torch.randn`` on the CPU, then moved to the device: the same pictures on any hardware.
* ``"NV"``: :class:`sdlab.noise.philox.PhiloxGenerator`, CUDA's ``torch.randn`` reproduced in NumPy.

>>> rng = ImageRNG((4, 64, 64), [1234, 1235], source="CPU")
>>> rng.first().shape  # (batch, *shape): initial noise, one generator per seed
torch.Size([2, 4, 64, 64])
>>> rng.next().shape  # per-step noise for ancestral samplers
torch.Size([2, 4, 64, 64])
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from sdlab.errors import SdlabError, closest
from sdlab.noise.brownian import BrownianTreeNoiseSampler
from sdlab.noise.philox import PhiloxGenerator
from sdlab.noise.types import NoiseSampler

__all__ = [
    "RNG_SOURCES",
    "ImageRNG",
    "image_noise_sampler",
    "brownian_noise_sampler",
    "torchsde_randn_source",
    "sampler_uses_ensd",
]

RNG_SOURCES = ("GPU", "CPU", "NV")
MAX_SEED = 2**32 - 1  # A1111 seeds are 0 .. 2**32 - 1; -1 means "random" in its UI

Generator = torch.Generator | PhiloxGenerator


def _check_source(source: str) -> str:
    if source not in RNG_SOURCES:
        raise SdlabError(f"unknown RNG source {source!r}", source=source, hint=closest(str(source), RNG_SOURCES))
    return source


def _check_seed(seed: object, *, what: str = "seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise SdlabError(f"{what} must be an int", **{what: seed}, hint=f"pass an int in [0, {MAX_SEED}]")
    if seed == -1:
        raise SdlabError(
            f"{what} -1 means 'random' in A1111; sdlab needs the actual seed",
            hint="draw one yourself (e.g. random.randrange(2**32)) so the run can be reproduced",
        )
    if not 0 <= seed <= MAX_SEED:
        raise SdlabError(f"{what} out of range", **{what: seed}, hint=f"A1111 seeds are ints in [0, {MAX_SEED}]")
    return int(seed)


def _check_seeds(seeds: Iterable[int], *, what: str = "seeds") -> list[int]:
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Iterable):
        raise SdlabError(f"{what} must be a list of ints, one per image", **{what: seeds}, hint=f"pass [{seeds!r}]")
    seeds = list(seeds)
    if len(seeds) == 0:
        raise SdlabError(f"{what} is empty", hint="pass one seed per image in the batch")
    return [_check_seed(s, what=what[:-1]) for s in seeds]


def _generator_device(source: str, device: torch.device) -> torch.device:
    """Where A1111 runs a torch generator: the CPU for "CPU" and on MPS, else the model's device."""
    return torch.device("cpu") if source == "CPU" or device.type == "mps" else device


def _new_generator(seed: int, source: str, device: torch.device) -> Generator:
    if source == "NV":
        return PhiloxGenerator(seed)
    return torch.Generator(_generator_device(source, device)).manual_seed(seed)


def _draw(generator: Generator, shape: tuple[int, ...], device: torch.device) -> Tensor:
    """The generator's next float32 standard normal tensor of ``shape``, on ``device``."""
    if isinstance(generator, PhiloxGenerator):
        return torch.from_numpy(generator.randn(shape)).to(device)
    return torch.randn(shape, generator=generator, device=generator.device, dtype=torch.float32).to(device)


def _slerp(t: float, low: Tensor, high: Tensor) -> Tensor:
    """A1111's variation-seed slerp from ``low`` (t = 0) to ``high`` (t = 1) for one image's noise.

    As in A1111 the vectors are the slices along dim 1 (the latent's height for (C, H, W)), and nearly
    parallel noises fall back to A1111's linear blend, with its weights.
    """
    cos_omega = (low / low.norm(dim=1, keepdim=True) * (high / high.norm(dim=1, keepdim=True))).sum(1, keepdim=True)
    if cos_omega.mean() > 0.9995:
        return low * t + high * (1 - t)
    omega = torch.acos(cos_omega)
    sin_omega = torch.sin(omega)
    return torch.sin((1 - t) * omega) / sin_omega * low + torch.sin(t * omega) / sin_omega * high


def _paste_centred(small: Tensor, full: Tensor) -> Tensor:
    """Put the centre of ``small`` (C, h, w) into the centre of ``full`` (C, H, W), cropping as A1111 does."""
    out = full.clone()
    ranges = []
    for size, full_size in ((small.shape[1], full.shape[1]), (small.shape[2], full.shape[2])):
        d = (full_size - size) // 2
        length = size if d >= 0 else size + 2 * d
        ranges.append((max(d, 0), max(-d, 0), length))  # (start in full, start in small, length)
    (ty, sy, h), (tx, sx, w) = ranges
    out[:, ty : ty + h, tx : tx + w] = small[:, sy : sy + h, sx : sx + w]
    return out


class ImageRNG:
    """Initial and per-step noise for a batch, one generator per image seed (A1111's ``ImageRNG``).

    ``shape`` is one image's latent shape, e.g. (4, 64, 64) for 512x512 SD. Options as in A1111:

    * ``source``: "GPU", "CPU" or "NV" (see the module docstring); ``device``: where the noise goes.
    * ``ensd`` (eta noise seed delta, infotext "ENSD"): after the initial noise every image's generator is
      re-seeded with ``seed + ensd``, so only the later (ancestral) noise changes. A1111 applies it whenever
      the setting is non-zero; it writes it to the infotext only when :func:`sampler_uses_ensd` says so.
      The caller decides: pass ``ensd=0`` to leave the streams alone.
    * ``subseeds`` / ``subseed_strength`` (infotext "Variation seed" / "Variation seed strength"): the initial
      noise is A1111's slerp from the seed's noise (strength 0) to the subseed's noise (strength 1).
    * ``seed_resize_from`` = (width, height) in pixels (infotext "Seed resize from"): the seed's noise is made
      at that size (latent = pixels // 8) and its centre pasted into the centre of the full-size noise.

    :meth:`first` returns the initial noise and restarts the streams; :meth:`next` returns the next noise
    (the initial noise on its first call, as A1111's ``next()``).
    """

    def __init__(
        self,
        shape: Sequence[int],
        seeds: Sequence[int],
        *,
        source: str = "GPU",
        device: str | torch.device = "cpu",
        ensd: int = 0,
        subseeds: Sequence[int] | None = None,
        subseed_strength: float = 0.0,
        seed_resize_from: tuple[int, int] | None = None,
    ) -> None:
        shape = tuple(shape)
        if not shape or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1 for s in shape):
            raise SdlabError(
                "shape must be positive ints", shape=shape, hint="pass one image's shape, e.g. (4, 64, 64)"
            )
        self.shape = tuple(int(s) for s in shape)
        self.seeds = _check_seeds(seeds)
        self.source = _check_source(source)
        self.device = torch.device(device)

        if isinstance(ensd, bool) or not isinstance(ensd, numbers.Integral):
            raise SdlabError("ensd must be an int", ensd=ensd, hint="pass 0 for no eta noise seed delta")
        if ensd and not all(0 <= s + ensd < 2**64 for s in self.seeds):
            raise SdlabError("seed + ensd must lie in [0, 2**64)", ensd=ensd, hint="use a smaller ensd")
        self.ensd = int(ensd)

        if isinstance(subseed_strength, bool) or not isinstance(subseed_strength, numbers.Real):
            raise SdlabError("subseed_strength must be a number", subseed_strength=subseed_strength)
        if not 0.0 <= subseed_strength <= 1.0:
            raise SdlabError("subseed_strength must lie in [0, 1]", subseed_strength=subseed_strength)
        if subseeds is not None:
            subseeds = _check_seeds(subseeds, what="subseeds")
            if len(subseeds) != len(self.seeds):
                raise SdlabError(
                    "need one subseed per seed",
                    seeds=len(self.seeds),
                    subseeds=len(subseeds),
                    hint="pass subseeds of the same length as seeds",
                )
            if len(self.shape) < 2 and subseed_strength:
                raise SdlabError("variation seeds need a shape of 2 or more dims", shape=self.shape)
        elif subseed_strength:
            raise SdlabError(
                "subseed_strength is set but subseeds is None",
                subseed_strength=subseed_strength,
                hint="pass subseeds=[...] (the variation seeds), or subseed_strength=0",
            )
        self.subseeds = subseeds
        self.subseed_strength = float(subseed_strength)

        self.seed_resize_from = None
        if seed_resize_from is not None:
            size = tuple(seed_resize_from)
            if len(size) != 2 or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in size):
                raise SdlabError(
                    "seed_resize_from must be (width, height) in pixels", seed_resize_from=seed_resize_from
                )
            if len(self.shape) != 3:
                raise SdlabError(
                    "seed resize is unsupported for this shape: it needs a (C, H, W) latent",
                    shape=self.shape,
                    hint="pass seed_resize_from=None",
                )
            if min(size) < 8:
                raise SdlabError(
                    "seed resize is unsupported below 8 pixels (one latent cell)",
                    seed_resize_from=seed_resize_from,
                    hint="pass at least 8x8, or seed_resize_from=None",
                )
            self.seed_resize_from = (int(size[0]), int(size[1]))

        self._generators: list[Generator] | None = None

    def _noise_shape(self) -> tuple[int, ...]:
        """The shape the seed's noise is made at: the resized latent with ``seed_resize_from``."""
        if self.seed_resize_from is None:
            return self.shape
        width, height = self.seed_resize_from
        return (self.shape[0], height // 8, width // 8)

    def first(self) -> Tensor:
        """The initial noise, (batch, *shape) float32 on ``device``; restarts every image's stream."""
        self._generators = [_new_generator(seed, self.source, self.device) for seed in self.seeds]
        noise_shape = self._noise_shape()

        def fresh(seed: int) -> Tensor:  # a seed's noise at noise_shape, from a generator of its own
            return _draw(_new_generator(seed, self.source, self.device), noise_shape, self.device)

        images = []
        for i, (seed, generator) in enumerate(zip(self.seeds, self._generators, strict=True)):
            # with seed resize, the seed's noise is made at the old size by a generator of its own
            noise = _draw(generator, self.shape, self.device) if noise_shape == self.shape else fresh(seed)
            if self.subseeds is not None and self.subseed_strength:
                noise = _slerp(self.subseed_strength, noise, fresh(self.subseeds[i]))
            if noise_shape != self.shape:
                noise = _paste_centred(noise, _draw(generator, self.shape, self.device))
            images.append(noise)

        if self.ensd:  # eta noise seed delta: later noise comes from seed + ENSD
            self._generators = [_new_generator(seed + self.ensd, self.source, self.device) for seed in self.seeds]
        return torch.stack(images)

    def next(self) -> Tensor:
        """The next noise, (batch, *shape): the initial noise on the first call, then per-step noise."""
        if self._generators is None:
            return self.first()
        return torch.stack([_draw(g, self.shape, self.device) for g in self._generators])


def image_noise_sampler(rng: ImageRNG) -> NoiseSampler:
    """The per-image noise source for ancestral samplers: ``(sigma, sigma_next) -> rng.next()``."""
    return lambda sigma, sigma_next: rng.next()


def sampler_uses_ensd(*, uses_ensd: bool, eta: float) -> bool:
    """Whether A1111 records ENSD in the infotext: the sampler has ``uses_ensd`` and its eta is not 0.

    A1111 v1.10 ``is_sampler_using_eta_noise_seed_delta``; ``eta`` is the eta in effect (A1111's default is
    1.0, or 0 for samplers with ``default_eta_is_0`` such as DDIM).
    """
    return bool(uses_ensd) and eta != 0


def _randn_local(seed: int, shape: tuple[int, ...], source: str, device: torch.device) -> Tensor:
    """The first normal tensor of a fresh generator seeded with ``seed`` (A1111's ``randn_local``)."""
    return _draw(_new_generator(seed, source, device), shape, device)


@contextlib.contextmanager
def torchsde_randn_source(source: str, device: str | torch.device) -> Iterator[None]:
    """Make torchsde's Brownian trees draw their normals through an A1111 RNG source, then restore torchsde.

    A1111 replaces ``torchsde._brownian.brownian_interval._randn`` for good (``replace_torchsde_browinan``);
    here the replacement lasts for the ``with`` block only. ``device`` is the model's device, which the
    "GPU" source draws on. Not thread-safe.
    """
    _check_source(source)
    device = torch.device(device)
    from torchsde._brownian import brownian_interval

    original = brownian_interval._randn

    def randn(size: Sequence[int], dtype: torch.dtype, tree_device: Any, seed: int) -> Tensor:
        return _randn_local(int(seed), tuple(size), source, device).to(device=tree_device, dtype=dtype)

    brownian_interval._randn = randn
    try:
        yield
    finally:
        brownian_interval._randn = original


def brownian_noise_sampler(
    x: Tensor, sigmas: Tensor, seeds: Sequence[int], *, source: str = "GPU", ensd: int = 0
) -> NoiseSampler:
    """A per-image Brownian-tree noise sampler for the SDE samplers, seeded as A1111 seeds it.

    A1111 builds k-diffusion's ``BrownianTreeNoiseSampler(x, sigma_min, sigma_max, seed=seeds)`` over the
    schedule's smallest non-zero and largest sigma, one tree per image seed, on ``x``'s device, and torchsde
    draws through the RNG source. A1111 does not add ENSD to these seeds; ``ensd`` (default 0) offsets them
    if you want it to.

    The tree spans the schedule's own sigma range, so its noise at a given sigma depends on that range: where
    the smallest non-zero sigma moves with the step count (the "Normal" schedule) an SDE sampler gets a new
    noise path at every step count and its image can jump from N to N+1 steps; with a fixed range (Karras,
    exponential) it converges like its deterministic twin. On the embedded model (seed 3, CFG 5) DPM++ 2M SDE's
    final latents differ by RMS 0.46 between 40 and 41 "Normal" steps and 0.024 between 40 and 41 Karras
    steps (DPM++ 2M: 0.023 and 0.012). This is A1111's behaviour, kept on purpose.
    """
    _check_source(source)
    seeds = _check_seeds(seeds)
    if len(seeds) != x.shape[0]:
        raise SdlabError("need one seed per image", batch=x.shape[0], seeds=len(seeds), hint="pass len(x) seeds")
    if isinstance(ensd, bool) or not isinstance(ensd, numbers.Integral):
        raise SdlabError("ensd must be an int", ensd=ensd)
    positive = sigmas[sigmas > 0]
    if positive.numel() == 0:
        raise SdlabError("sigmas has no positive value", sigmas=sigmas.tolist(), hint="pass the sampling schedule")
    tree_seeds = [seed + int(ensd) for seed in seeds]

    with torchsde_randn_source(source, x.device):
        tree = BrownianTreeNoiseSampler(x, positive.min(), sigmas.max(), seed=tree_seeds, cpu=False)

    def noise(sigma: Tensor, sigma_next: Tensor) -> Tensor:
        with torchsde_randn_source(source, x.device):
            return tree(sigma, sigma_next)

    return noise
