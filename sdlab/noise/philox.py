"""CUDA's ``torch.randn`` on any machine: Philox4x32-10 and curand's Box-Muller, in NumPy.

A1111's "NV" RNG source. ``torch.randn(shape, device="cuda", generator=g)`` with ``g`` seeded by ``seed``
launches a grid-stride kernel in which every thread runs its own Philox4x32-10 stream (Salmon et al. 2011,
"Parallel random numbers: as easy as 1, 2, 3"; curand's ``curand_init(seed, subsequence=thread, offset)``):

* the key is the 64-bit seed, split into its low and high 32-bit words;
* thread ``t`` of ``T`` uses the 128-bit counter ``(offset + j) + 2**64 * t``, i.e. the words
  ``(lo(offset + j), hi(offset + j), lo(t), hi(t))``, for its ``j``-th block of four random words;
* each block becomes four normals through curand's Box-Muller (``curand_normal4``):
  ``s1 sin v1, s1 cos v1, s2 sin v2, s2 cos v2`` from the word pairs (w0, w1) and (w2, w3);
* element ``i`` comes from thread ``i % T``, block ``i // (4 T)``, normal ``(i // T) % 4``;
* ``T`` is 256 threads per block times ``min(ceil(n / 256), resident blocks of the GPU)``, and after the call
  the generator's offset advances by ``ceil(n / (4 T))`` blocks (torch counts it in words: 4 per block).

When ``T >= n`` (every SD latent on any recent GPU, and A1111's assumption) element ``i`` is simply
``s sin v`` of block ``(offset, i)`` and the offset advances by one block per call.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from sdlab.errors import SdlabError

__all__ = ["PhiloxGenerator", "philox4x32", "box_muller"]

_MASK32 = 0xFFFFFFFF
_M0, _M1 = 0xD2511F53, 0xCD9E8D57  # Philox4x32 round multipliers
_W0, _W1 = 0x9E3779B9, 0xBB67AE85  # key schedule (Weyl) increments: golden ratio and sqrt(3) - 1
_THREADS_PER_BLOCK = 256  # torch's block size for random kernels

# curand's single-precision constants, evaluated in float32 as the C expressions are.
_INV_2POW32 = np.float32(2.3283064e-10)
_INV_2POW32_2PI = np.float32(np.float32(2.3283064e-10) * np.float32(6.2831855))


def philox4x32(counter: np.ndarray, key: np.ndarray, *, rounds: int = 10) -> np.ndarray:
    """The Philox4x32-R block function (Salmon et al. 2011, sec. 4.2) on many counters at once.

    ``counter``: (4, n) words; ``key``: (2,) or (2, n) words. Returns (4, n) ``uint32`` random words.

    >>> philox4x32(np.zeros((4, 1), np.uint32), np.zeros(2, np.uint32))[:, 0].tolist()  # Random123 KAT
    [1713891541, 3781805453, 3159862348, 2600524760]
    """
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) for c in counter)
    k0, k1 = (np.asarray(k, dtype=np.uint64) for k in key)
    for r in range(rounds):
        if r:  # bump the key before every round but the first
            k0 = (k0 + _W0) & _MASK32
            k1 = (k1 + _W1) & _MASK32
        p0 = c0 * _M0  # 32 x 32 -> 64-bit products, exact in uint64
        p1 = c2 * _M1
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & _MASK32, (p0 >> 32) ^ c3 ^ k1, p0 & _MASK32
    return np.stack([c0, c1, c2, c3]).astype(np.uint32)


def _uniform32(words: np.ndarray, scale: np.float32) -> np.ndarray:
    """``float(words) * scale + scale / 2`` as CUDA computes it: word rounded to float32, one fused rounding."""
    w = words.astype(np.float32).astype(np.float64)
    return (w * np.float64(scale) + np.float64(scale) / 2).astype(np.float32)


def box_muller(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """curand's Box-Muller: word pairs -> ``(s sin v, s cos v)`` in float32.

    ``u = x 2**-32 + 2**-33`` (never 0), ``v = 2 pi (y 2**-32 + 2**-33)``, ``s = sqrt(-2 ln u)``. The
    transcendental functions run in float64 and are rounded once, so results differ from the GPU's fast
    ``__sincosf``/``logf`` in the last bits: at most 2.4e-6 against CUDA ``torch.randn`` on an H200.
    """
    u = _uniform32(x, _INV_2POW32).astype(np.float64)
    v = _uniform32(y, _INV_2POW32_2PI).astype(np.float64)
    s = np.sqrt(-2.0 * np.log(u))
    return (s * np.sin(v)).astype(np.float32), (s * np.cos(v)).astype(np.float32)


def _check_word64(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= int(value) < 2**64:
        raise SdlabError(
            f"{name} must be an int in [0, 2**64)", hint=f"pass a non-negative int {name}", **{name: value}
        )
    return int(value)


class PhiloxGenerator:
    """A NumPy stand-in for ``torch.Generator("cuda").manual_seed(seed)`` feeding ``torch.randn``.

    ``offset`` counts Philox counter blocks already used (torch's philox offset divided by 4).
    ``cuda_threads`` is the imitated GPU's resident threads (``multi_processor_count *
    max_threads_per_multi_processor``); ``None`` assumes a grid as large as the tensor, as A1111 does,
    which is exact for any tensor up to that many elements.

    >>> g = PhiloxGenerator(0)
    >>> [round(float(v), 6) for v in g.randn((3, 4))[0]]  # CUDA torch.randn((3, 4)) with seed 0
    [-0.924662, -0.425344, -2.643846, 0.145184]
    >>> g.offset  # the next call continues where torch would
    1
    """

    def __init__(self, seed: int, *, cuda_threads: int | None = None) -> None:
        self.seed = _check_word64("seed", seed)
        if cuda_threads is not None:
            threads = _check_word64("cuda_threads", cuda_threads)
            if threads < _THREADS_PER_BLOCK:
                raise SdlabError(
                    "cuda_threads must be at least one block of 256 threads",
                    cuda_threads=cuda_threads,
                    hint="pass multi_processor_count * max_threads_per_multi_processor, or None",
                )
        self.cuda_threads = cuda_threads
        self.offset = 0

    def randn(self, shape: tuple[int, ...]) -> np.ndarray:
        """The next standard normal float32 array of ``shape``, exactly as CUDA ``torch.randn`` orders it."""
        n = math.prod(shape)
        if n == 0:
            return np.zeros(shape, dtype=np.float32)
        blocks = -(-n // _THREADS_PER_BLOCK)
        if self.cuda_threads is not None:
            blocks = min(blocks, self.cuda_threads // _THREADS_PER_BLOCK)
        threads = blocks * _THREADS_PER_BLOCK

        i = np.arange(n, dtype=np.uint64)
        thread = i % threads
        lap = i // threads  # how many grid-widths in: block j = lap // 4, normal number lap % 4
        block = self.offset + lap // 4
        counter = np.stack([block & _MASK32, block >> 32, thread & _MASK32, thread >> 32])
        key = np.array([self.seed & _MASK32, self.seed >> 32], dtype=np.uint64)
        w = philox4x32(counter, key)

        which = lap % 4
        first_pair = which < 2
        sin_v, cos_v = box_muller(np.where(first_pair, w[0], w[2]), np.where(first_pair, w[1], w[3]))
        out = np.where(which % 2 == 0, sin_v, cos_v)

        self.offset += -(-n // (4 * threads))
        return out.reshape(shape)
