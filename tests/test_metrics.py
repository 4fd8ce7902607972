"""sdlab.measure.metrics: LPIPS plumbing (seeded random backbone, no download), SSIM against scikit-image, PSNR
by hand; the old path sdlab.metrics forwards."""

from __future__ import annotations

import importlib.util
import math

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

    reference = lpips_pkg.LPIPS(net="alex", pnet_rand=True, verbose=False)
    for block in reference.net.children():
        for index, module in block.named_children():
            module.load_state_dict(alexnet.features[int(index)].state_dict())
    x, y = _pair(2, 3, 64, 64, seed=4)
    with torch.no_grad():
        expected = reference(2 * x - 1, 2 * y - 1).reshape(-1)
    torch.testing.assert_close(M.lpips(x, y, pretrained_backbone=True), expected, rtol=1e-5, atol=1e-6)


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
    with pytest.warns(UserWarning, match="LPIPS skipped"):
        out = M.compare(x, y, pretrained_backbone=True)  # default metrics: lpips is optional
    assert list(out) == ["ssim", "psnr"]
    torch.testing.assert_close(out["ssim"], M.ssim(x, y))
    with pytest.raises(SdlabError, match="alexnet-owt-7be5be79.pth"):
        M.compare(x, y, metrics=("lpips", "ssim"), pretrained_backbone=True)
    with pytest.warns(UserWarning, match="LPIPS skipped"):
        out = M.compare(x, y, metrics=("lpips", "psnr"), pretrained_backbone=True, skip_unavailable=True)
    assert list(out) == ["psnr"]
    out = M.compare(x, y, pretrained_backbone=False)
    assert list(out) == ["lpips", "ssim", "psnr"] and all(v.shape == (2,) for v in out.values())


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
