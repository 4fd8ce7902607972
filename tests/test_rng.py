"""Per-image noise (sdlab.noise.rng) and the NumPy Philox that imitates CUDA's torch.randn (sdlab.noise.philox)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from sdlab.errors import SdlabError
from sdlab.noise.brownian import BrownianTreeNoiseSampler
from sdlab.noise.philox import PhiloxGenerator, philox4x32
from sdlab.noise.rng import (
    ImageRNG,
    brownian_noise_sampler,
    image_noise_sampler,
    sampler_uses_ensd,
    torchsde_randn_source,
)

SHAPE = (4, 8, 8)

# Random123's published known-answer vectors for Philox4x32-10 (kat_vectors): counter, key -> output.
PHILOX_KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]

# CUDA torch.randn((3, 4)) with seed 0, as A1111 documents it in modules/rng_philox.py.
CUDA_SEED0_3x4 = np.array(
    [
        [-0.92466259, -0.42534415, -2.6438457, 0.14518388],
        [-0.12086647, -0.57972564, -0.62285122, -0.32838709],
        [-1.07454231, -0.36314407, -1.67105067, 2.26550497],
    ]
)


def cpu_randn(seed: int, shape: tuple[int, ...] = SHAPE, draws: int = 1) -> list[torch.Tensor]:
    """The first ``draws`` torch.randn tensors of a CPU generator seeded with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g) for _ in range(draws)]


# -- Philox -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("counter", "key", "expected"), PHILOX_KAT)
def test_philox_block_matches_random123_known_answers(counter, key, expected):
    out = philox4x32(np.array(counter, np.uint32)[:, None], np.array(key, np.uint32))
    assert out[:, 0].tolist() == list(expected)


def test_nv_generator_reproduces_cuda_randn_seed0():
    assert np.allclose(PhiloxGenerator(0).randn((3, 4)), CUDA_SEED0_3x4, rtol=0, atol=1e-6)


def test_nv_generator_consecutive_calls_use_the_next_counter_block():
    g = PhiloxGenerator(7)
    first = g.randn((2, 3))
    assert g.offset == 1  # one Philox block per thread per call, as torch's offset += 4 words
    resumed = PhiloxGenerator(7)
    resumed.offset = 1
    second = g.randn((2, 3))
    assert np.array_equal(second, resumed.randn((2, 3))) and not np.array_equal(first, second)


def test_nv_grid_stride_layout_with_few_threads_matches_the_unlimited_layout_where_it_must():
    # With T = 256 threads, elements 0..255 still come from the first normal of threads 0..255.
    n = 256 * 5
    small = PhiloxGenerator(3, cuda_threads=256).randn((n,))
    big = PhiloxGenerator(3).randn((n,))
    assert np.array_equal(small[:256], big[:256])
    assert not np.array_equal(small[256:], big[256:])
    g = PhiloxGenerator(3, cuda_threads=256)
    g.randn((n,))
    assert g.offset == 2  # ceil(1280 / (4 * 256)) blocks per thread


# -- ImageRNG ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["CPU", "GPU"])
def test_cpu_source_is_torch_randn_with_a_seeded_generator(source):
    rng = ImageRNG(SHAPE, [11, 12], source=source, device="cpu")  # "GPU" on a CPU device is the CPU generator
    draws = [rng.first(), rng.next(), rng.next()]
    for i, seed in enumerate([11, 12]):
        for got, want in zip([d[i] for d in draws], cpu_randn(seed, draws=3), strict=True):
            assert torch.equal(got, want)


def test_first_restarts_the_stream_and_next_starts_with_first():
    a = ImageRNG(SHAPE, [5], source="CPU")
    b = ImageRNG(SHAPE, [5], source="CPU")
    assert torch.equal(a.next(), b.first())
    a.next()
    assert torch.equal(a.first(), b.first())


@pytest.mark.parametrize("source", ["CPU", "NV"])
def test_image_noise_is_independent_of_batch_size_and_position(source):
    batch = ImageRNG(SHAPE, [100, 200, 300], source=source)
    alone = ImageRNG(SHAPE, [200], source=source)
    reordered = ImageRNG(SHAPE, [300, 200], source=source)
    for _ in range(3):
        b, a, r = batch.next(), alone.next(), reordered.next()
        assert torch.equal(b[1], a[0]) and torch.equal(b[1], r[1]) and torch.equal(b[2], r[0])
        assert not torch.equal(b[0], b[1])


def test_nv_source_first_noise_is_the_cuda_check_values():
    noise = ImageRNG((3, 4), [0], source="NV").first()
    assert noise.dtype == torch.float32 and noise.shape == (1, 3, 4)
    assert np.allclose(noise[0].numpy(), CUDA_SEED0_3x4, rtol=0, atol=1e-6)


def test_ensd_changes_only_the_noise_after_the_first():
    plain = ImageRNG(SHAPE, [42, 43], source="CPU")
    delta = ImageRNG(SHAPE, [42, 43], source="CPU", ensd=31337)
    assert torch.equal(plain.first(), delta.first())
    later = delta.next()
    assert not torch.equal(plain.next(), later)
    for i, seed in enumerate([42, 43]):  # re-seeded with seed + ENSD after the first noise
        assert torch.equal(later[i], cpu_randn(seed + 31337)[0])


def test_sampler_uses_ensd_only_for_ensd_samplers_with_nonzero_eta():
    assert sampler_uses_ensd(uses_ensd=True, eta=1.0)
    assert not sampler_uses_ensd(uses_ensd=True, eta=0.0)
    assert not sampler_uses_ensd(uses_ensd=False, eta=1.0)


def test_variation_strength_0_is_the_seed_and_1_the_subseed():
    seed_noise = ImageRNG(SHAPE, [1, 2], source="CPU").first()
    sub_noise = ImageRNG(SHAPE, [7, 8], source="CPU").first()
    at0 = ImageRNG(SHAPE, [1, 2], source="CPU", subseeds=[7, 8], subseed_strength=0.0).first()
    at1 = ImageRNG(SHAPE, [1, 2], source="CPU", subseeds=[7, 8], subseed_strength=1.0).first()
    assert torch.equal(at0, seed_noise)
    assert torch.allclose(at1, sub_noise, rtol=0, atol=1e-6)


def test_variation_halfway_is_a_slerp_not_a_lerp():
    seed_noise, sub_noise = cpu_randn(1, (4, 32, 32))[0], cpu_randn(7, (4, 32, 32))[0]
    mid = ImageRNG((4, 32, 32), [1], source="CPU", subseeds=[7], subseed_strength=0.5).first()[0]
    # slerp keeps each column's length (A1111 interpolates along dim 1); a lerp would shrink it by ~1/sqrt(2)
    ratio = mid.norm(dim=1) / ((seed_noise.norm(dim=1) + sub_noise.norm(dim=1)) / 2)
    assert 0.9 < ratio.mean() < 1.1
    assert (mid - (seed_noise + sub_noise) / 2).abs().max() > 0.1


def test_variation_changes_only_the_initial_noise():
    plain = ImageRNG(SHAPE, [1], source="CPU")
    varied = ImageRNG(SHAPE, [1], source="CPU", subseeds=[9], subseed_strength=0.3)
    assert not torch.equal(plain.first(), varied.first())
    assert torch.equal(plain.next(), varied.next())


def test_seed_resize_to_the_same_size_is_no_resize():
    plain = ImageRNG(SHAPE, [3], source="CPU").first()
    same = ImageRNG(SHAPE, [3], source="CPU", seed_resize_from=(64, 64)).first()
    assert torch.equal(plain, same)


def test_seed_resize_from_smaller_pastes_the_old_noise_in_the_centre():
    rng = ImageRNG((4, 8, 8), [3], source="CPU", seed_resize_from=(32, 32))  # old latent 4x4
    noise = rng.first()[0]
    old = cpu_randn(3, (4, 4, 4))[0]
    full = cpu_randn(3, (4, 8, 8))[0]
    assert torch.equal(noise[:, 2:6, 2:6], old)
    border = torch.ones(8, 8, dtype=torch.bool)
    border[2:6, 2:6] = False
    assert torch.equal(noise[:, border], full[:, border])
    assert torch.equal(rng.next()[0], cpu_randn(3, (4, 8, 8), draws=2)[1])  # stream continues after the full draw


def test_seed_resize_from_larger_crops_the_old_noise_centre():
    noise = ImageRNG((4, 8, 8), [3], source="CPU", seed_resize_from=(96, 80)).first()[0]  # old latent 10x12
    old = cpu_randn(3, (4, 10, 12))[0]
    assert torch.equal(noise, old[:, 1:9, 2:10])


def test_image_noise_sampler_draws_the_next_noise():
    rng, ref = ImageRNG(SHAPE, [4], source="CPU"), ImageRNG(SHAPE, [4], source="CPU")
    rng.first(), ref.first()
    sampler = image_noise_sampler(rng)
    assert torch.equal(sampler(torch.tensor(2.0), torch.tensor(1.0)), ref.next())
    assert torch.equal(sampler(torch.tensor(1.0), torch.tensor(0.5)), ref.next())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "gpu"}, "did you mean 'GPU'"),
        ({"source": "philox"}, "unknown RNG source"),
        ({"seeds": [-1]}, "means 'random'"),
        ({"seeds": [2**32]}, "out of range"),
        ({"seeds": [1.5]}, "must be an int"),
        ({"seeds": [True]}, "must be an int"),
        ({"seeds": []}, "empty"),
        ({"seeds": 5}, "list of ints"),
        ({"subseeds": [1, 2]}, "one subseed per seed"),
        ({"subseed_strength": 0.5}, "subseeds is None"),
        ({"subseeds": [1], "subseed_strength": 1.5}, "[0, 1]"),
        ({"ensd": 0.5}, "ensd must be an int"),
        ({"shape": (4, 0, 8)}, "positive ints"),
        ({"shape": (16,), "seed_resize_from": (64, 64)}, "unsupported"),
        ({"seed_resize_from": (4, 64)}, "unsupported"),
    ],
)
def test_bad_input_raises_sdlab_error(kwargs, message):
    args = {"shape": SHAPE, "seeds": [1], **kwargs}
    with pytest.raises(SdlabError, match=re.escape(message)):
        ImageRNG(args.pop("shape"), args.pop("seeds"), **args)


# -- torchsde and Brownian trees --------------------------------------------------------------------------------


def test_torchsde_randn_source_routes_and_restores():
    from torchsde._brownian import brownian_interval

    original = brownian_interval._randn
    with torchsde_randn_source("NV", "cpu"):
        drawn = brownian_interval._randn((2, 3), torch.float64, torch.device("cpu"), 123)
        assert drawn.dtype == torch.float64
        assert np.array_equal(drawn.numpy(), PhiloxGenerator(123).randn((2, 3)).astype(np.float64))
    assert brownian_interval._randn is original
    with pytest.raises(RuntimeError), torchsde_randn_source("CPU", "cpu"):
        assert torch.equal(brownian_interval._randn((5,), torch.float32, "cpu", 9), cpu_randn(9, (5,))[0])
        raise RuntimeError("boom")
    assert brownian_interval._randn is original
    with pytest.raises(SdlabError, match="did you mean"):
        torchsde_randn_source("cuda", "cpu").__enter__()


def test_torchsde_tree_draws_through_the_source():
    import torchsde

    def increment(source: str) -> torch.Tensor:
        with torchsde_randn_source(source, "cpu"):
            tree = torchsde.BrownianInterval(t0=0.0, t1=1.0, size=(1, 4), entropy=5)
            return tree(0.2, 0.6)

    assert torch.equal(increment("GPU"), increment("CPU"))  # on a CPU device both are the CPU generator
    assert not torch.equal(increment("CPU"), increment("NV"))
    with torchsde_randn_source("NV", "cpu"):
        pass
    tree = torchsde.BrownianInterval(t0=0.0, t1=1.0, size=(1, 4), entropy=5)  # torchsde's own _randn again
    assert torch.equal(tree(0.2, 0.6), increment("CPU"))


def test_brownian_noise_is_per_image_and_follows_the_source():
    sigmas = torch.tensor([10.0, 5.0, 2.0, 1.0, 0.5, 0.0])
    x2, x1 = torch.zeros(2, *SHAPE), torch.zeros(1, *SHAPE)
    pair = brownian_noise_sampler(x2, sigmas, [21, 22], source="CPU")
    single = brownian_noise_sampler(x1, sigmas, [22], source="CPU")
    assert torch.equal(pair(sigmas[1], sigmas[2])[1], single(sigmas[1], sigmas[2])[0])
    nv = brownian_noise_sampler(x1, sigmas, [22], source="NV")
    assert not torch.equal(nv(sigmas[1], sigmas[2]), single(sigmas[1], sigmas[2]))
    shifted = brownian_noise_sampler(x1, sigmas, [22], source="CPU", ensd=1)
    assert not torch.equal(shifted(sigmas[1], sigmas[2]), single(sigmas[1], sigmas[2]))
    with pytest.raises(SdlabError, match="one seed per image"):
        brownian_noise_sampler(x2, sigmas, [21], source="CPU")


def test_brownian_noise_depends_on_the_schedules_sigma_range():
    """A1111 spans the tree over [smallest non-zero sigma, largest sigma]: schedules with one range share their
    noise on a shared interval, and a schedule whose smallest sigma moves (the "Normal" schedule at another step
    count) draws other noise there: why SDE samplers can jump from N to N+1 steps."""
    x = torch.zeros(1, *SHAPE)
    a = brownian_noise_sampler(x, torch.tensor([10.0, 5.0, 2.0, 0.5, 0.0]), [41], source="CPU")
    same_range = brownian_noise_sampler(x, torch.tensor([10.0, 5.0, 3.0, 2.0, 1.0, 0.5, 0.0]), [41], source="CPU")
    other_min = brownian_noise_sampler(x, torch.tensor([10.0, 5.0, 2.0, 0.6, 0.0]), [41], source="CPU")
    s, s_next = torch.tensor(5.0), torch.tensor(2.0)
    assert torch.equal(a(s, s_next), same_range(s, s_next))
    assert not torch.allclose(a(s, s_next), other_min(s, s_next), atol=1e-3)


def test_brownian_gpu_source_on_cpu_is_the_plain_seeded_tree():

    sigmas = torch.tensor([10.0, 5.0, 2.0, 1.0, 0.5, 0.0])
    x = torch.zeros(2, *SHAPE)
    ours = brownian_noise_sampler(x, sigmas, [31, 32], source="GPU")
    plain = BrownianTreeNoiseSampler(x, sigmas[sigmas > 0].min(), sigmas.max(), seed=[31, 32])
    for s, s_next in zip(sigmas[:-2], sigmas[1:-1], strict=True):
        assert torch.equal(ours(s, s_next), plain(s, s_next))


# -- on a CUDA GPU ----------------------------------------------------------------------------------------------

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("seed", [0, 1, 1234, 2**32 - 1])
def test_nv_matches_cuda_torch_randn(seed):
    g = torch.Generator("cuda").manual_seed(seed)
    nv = PhiloxGenerator(seed)
    for shape in [(3, 4), (4, 64, 64), (4, 128, 128), (7, 13)]:
        want = torch.randn(shape, generator=g, device="cuda").cpu().numpy()
        assert np.allclose(nv.randn(shape), want, rtol=0, atol=2e-5), shape


@pytest.mark.gpu
@cuda
def test_nv_matches_cuda_torch_randn_beyond_one_grid():
    props = torch.cuda.get_device_properties(0)
    threads = props.multi_processor_count * props.max_threads_per_multi_processor
    shape = (3, threads // 64 + 5, 64)  # more elements than resident threads: the grid-stride loop wraps
    g = torch.Generator("cuda").manual_seed(77)
    nv = PhiloxGenerator(77, cuda_threads=threads)
    for _ in range(2):
        want = torch.randn(shape, generator=g, device="cuda").cpu().numpy()
        assert np.allclose(nv.randn(shape), want, rtol=0, atol=2e-5)


@pytest.mark.gpu
@cuda
def test_gpu_source_on_cuda_is_cuda_torch_randn_and_nv_matches_it():
    gpu = ImageRNG((4, 64, 64), [5, 6], source="GPU", device="cuda")
    nv = ImageRNG((4, 64, 64), [5, 6], source="NV", device="cuda")
    g = torch.Generator("cuda").manual_seed(6)
    for _ in range(3):
        a, b = gpu.next(), nv.next()
        assert a.device.type == "cuda" and torch.equal(a[1], torch.randn((4, 64, 64), generator=g, device="cuda"))
        assert torch.allclose(a, b, rtol=0, atol=2e-5)


@pytest.mark.gpu
@cuda
def test_brownian_on_cuda_gpu_source_is_the_cuda_tree_and_nv_imitates_it():

    sigmas = torch.tensor([10.0, 5.0, 2.0, 1.0, 0.5, 0.0], device="cuda")
    x = torch.zeros(2, 4, 64, 64, device="cuda")
    gpu = brownian_noise_sampler(x, sigmas, [41, 42], source="GPU")
    nv = brownian_noise_sampler(x, sigmas, [41, 42], source="NV")
    plain = BrownianTreeNoiseSampler(x, sigmas[sigmas > 0].min(), sigmas.max(), seed=[41, 42], cpu=False)
    for s, s_next in zip(sigmas[:-2], sigmas[1:-1], strict=True):
        a = gpu(s, s_next)
        assert torch.equal(a, plain(s, s_next))
        assert torch.allclose(nv(s, s_next), a, rtol=0, atol=1e-4)


@pytest.mark.parametrize(
    ("old", "name", "new"),
    [
        ("sdlab.rng", "ImageRNG", "sdlab.noise.rng"),
        ("sdlab.philox", "PhiloxGenerator", "sdlab.noise.philox"),
        ("sdlab.samplers.brownian", "BrownianTreeNoiseSampler", "sdlab.noise.brownian"),
    ],
)
def test_old_noise_paths_forward_with_a_warning(old, name, new):
    import importlib

    with pytest.warns(DeprecationWarning, match=new):
        value = getattr(importlib.import_module(old), name)
    assert value is getattr(importlib.import_module(new), name)


def test_noise_sampler_type_has_one_home():
    from sdlab.noise import NoiseSampler
    from sdlab.samplers.base import NoiseSampler as from_samplers

    assert from_samplers is NoiseSampler
