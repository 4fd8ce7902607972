"""Image and latent distances, batched on the inputs' device: LPIPS, SSIM, PSNR and latent RMSE.

>>> import torch, sdlab.measure.metrics as M
>>> a, b = torch.rand(4, 3, 64, 64), torch.rand(4, 3, 64, 64)   # (batch, 3, H, W) in [0, 1]
>>> M.ssim(a, b).shape                                          # one value per image pair
torch.Size([4])
>>> M.compare(a, b, metrics=("ssim", "psnr"))                   # doctest: +SKIP
{'ssim': tensor([...]), 'psnr': tensor([...])}

Inputs: float tensors in [0, 1] (or any ``value_range=(lo, hi)``, e.g. (-1, 1)), channels first
(``(B, C, H, W)`` or one ``(C, H, W)`` image); uint8 tensors (channels first) or uint8 numpy arrays (channels last,
``(B, H, W, C)`` / ``(H, W, C)`` / ``(H, W)``, as PIL and imageio give them) in [0, 255]. Everything is converted
to float in [0, 1] before measuring, so ``data_range=1.0`` is the full range whatever the input type. Float values
more than 0.1% of the range outside ``value_range`` (or NaN) raise a SdlabError rather than being clamped.

LPIPS needs the optional ``lpips`` package (``pip install "sdlab[metrics]"``) and the torchvision ImageNet backbone
in ``$TORCH_HOME/hub/checkpoints``; see :func:`lpips`; :func:`lpips_unavailable` says whether it can run here.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import urllib.request
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sdlab import environment
from sdlab.errors import SdlabError, closest

__all__ = [
    "lpips",
    "ssim",
    "psnr",
    "latent_rmse",
    "compare",
    "describe_metrics",
    "lpips_backbone_path",
    "lpips_unavailable",
    "lpips_random_backbone",
    "LPIPS_MIN_SIZE",
    "LPIPS_NETS",
    "METRICS",
]

# The LPIPS authors calibrated and evaluated their networks on 64x64 patches and larger; smaller images are
# upsampled (bilinear, align_corners=False) so that their shorter side is this many pixels before measuring.
LPIPS_MIN_SIZE = 64
# backbone name -> (torchvision checkpoint file, URL it is published at)
LPIPS_NETS = {
    "alex": ("alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"),
    "vgg": ("vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth"),
    "squeeze": ("squeezenet1_1-b8a52dc0.pth", "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth"),
}
METRICS = ("lpips", "ssim", "psnr")
DEFAULT_METRICS = ("lpips", "ssim", "psnr")
RANDOM_BACKBONE_ENV = "SDLAB_LPIPS_RANDOM_BACKBONE"  # "1": LPIPS on a seeded random backbone (tests, benchmarks)
DOWNLOAD_TIMEOUT_S = 10.0  # per network operation, so an unreachable host fails fast instead of hanging
RANDOM_BACKBONE_SEED = 0

# Wang et al. 2004 SSIM constants
SSIM_SIGMA = 1.5
SSIM_WIN = 11  # 2 * int(3.5 * sigma + 0.5) + 1, the same window scikit-image uses for sigma 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03

_LPIPS_MODELS: dict[tuple[str, str, bool, str], Any] = {}


# ---------------------------------------------------------------------------------------------------------------
# input normalisation (one place)


def _to_unit(x: Any, *, value_range: tuple[float, float] | None, name: str) -> Tensor:
    """``x`` as a float (B, C, H, W) tensor in [0, 1] on its own device (numpy arrays land on the CPU)."""
    if isinstance(x, np.ndarray):
        if x.ndim == 2:
            x = x[..., None]
        if x.ndim not in (3, 4):
            raise SdlabError(
                f"{name} must be an image (H, W[, C]) or a batch (B, H, W, C) as a numpy array",
                shape=tuple(x.shape),
            )
        t = torch.from_numpy(np.array(x)).movedim(-1, -3)  # numpy is channels-last; copied (may be read-only)
    elif isinstance(x, Tensor):
        t = x
    else:
        raise SdlabError(f"{name} must be a torch tensor or a numpy array", type=type(x).__name__)
    if t.ndim == 3:
        t = t.unsqueeze(0)
    if t.ndim != 4:
        raise SdlabError(
            f"{name} must be one image (C, H, W) or a batch (B, C, H, W)",
            shape=tuple(t.shape),
            hint="latents go to latent_rmse",
        )
    if t.dtype == torch.uint8:
        if value_range is not None:
            raise SdlabError(
                "value_range is for float images; uint8 images are always [0, 255]", value_range=value_range
            )
        return t.float() / 255.0
    if not t.is_floating_point():
        raise SdlabError(f"{name} must be float or uint8", dtype=str(t.dtype), hint="convert to uint8 or float")
    lo, hi = (0.0, 1.0) if value_range is None else (float(value_range[0]), float(value_range[1]))
    if not hi > lo:
        raise SdlabError("value_range must be (low, high) with high > low", value_range=value_range)
    t = t.float() if t.dtype in (torch.float16, torch.bfloat16) else t
    if t.numel():
        tmin, tmax = t.min().item(), t.max().item()
        tol = 1e-3 * (hi - lo)
        if math.isnan(tmin) or math.isnan(tmax) or tmin < lo - tol or tmax > hi + tol:
            raise SdlabError(
                f"{name} has values outside value_range",
                min=round(tmin, 4),
                max=round(tmax, 4),
                value_range=(lo, hi),
                hint="pass value_range=(-1, 1) for [-1, 1] images, or clamp first",
            )
    return t if (lo, hi) == (0.0, 1.0) else (t - lo) / (hi - lo)


def _pair(a: Any, b: Any, value_range: tuple[float, float] | None) -> tuple[Tensor, Tensor]:
    """Both inputs in [0, 1], same shape and device, same float dtype."""
    x = _to_unit(a, value_range=value_range, name="a")
    y = _to_unit(b, value_range=value_range, name="b")
    if x.shape != y.shape:
        raise SdlabError(
            "a and b must have the same shape",
            a_shape=tuple(getattr(a, "shape", ())),
            b_shape=tuple(getattr(b, "shape", ())),
        )
    if x.device != y.device:
        raise SdlabError("a and b must be on the same device", a_device=str(x.device), b_device=str(y.device))
    if x.shape[0] == 0:
        raise SdlabError("empty batch", shape=tuple(x.shape))
    dtype = torch.promote_types(x.dtype, y.dtype)
    return x.to(dtype), y.to(dtype)


# ---------------------------------------------------------------------------------------------------------------
# SSIM, PSNR, RMSE


def _gaussian_window(sigma: float, size: int, *, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Normalised 1-D Gaussian taps, ``size`` of them centred on zero."""
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-0.5 * (r / sigma) ** 2)
    return (g / g.sum()).to(dtype=dtype, device=device)


def _band(taps: Tensor, n: int) -> Tensor:
    """The (n - k + 1, n) matrix whose row i holds the k ``taps`` at columns i .. i + k - 1 (a valid 1-D filter)."""
    k = len(taps)
    rows = torch.arange(n - k + 1, device=taps.device)
    band = torch.zeros(n - k + 1, n, dtype=taps.dtype, device=taps.device)
    band[rows[:, None], rows[:, None] + torch.arange(k, device=taps.device)] = taps
    return band


def _ssim(x: Tensor, y: Tensor, data_range: float) -> Tensor:
    """Mean SSIM per item (Wang et al. 2004): Gaussian-weighted local statistics, valid region, mean over channels."""
    b, c, h, w = x.shape
    if h < SSIM_WIN or w < SSIM_WIN:
        raise SdlabError(f"SSIM needs images of at least {SSIM_WIN}x{SSIM_WIN}", shape=tuple(x.shape))
    g = _gaussian_window(SSIM_SIGMA, SSIM_WIN, dtype=x.dtype, device=x.device)
    # separable Gaussian, no padding (only the valid region remains), as two matrix products with banded
    # matrices: rows blurred by (h - 10, h) @ image, columns by image @ (w, w - 10); 7x faster than a depthwise
    # convolution on a CPU. One pass for all five local moments.
    stats = _band(g, h) @ torch.cat([x, y, x * x, y * y, x * y]) @ _band(g, w).T
    mu_x, mu_y, e_xx, e_yy, e_xy = stats.split(b)
    var_x, var_y = e_xx - mu_x * mu_x, e_yy - mu_y * mu_y  # population (weighted) variances
    cov_xy = e_xy - mu_x * mu_y
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(1)


def ssim(a: Any, b: Any, *, data_range: float = 1.0, value_range: tuple[float, float] | None = None) -> Tensor:
    """Mean SSIM per image pair, Wang et al. 2004 (IEEE TIP 13(4)): 11x11 Gaussian window (sigma 1.5), K1 0.01,
    K2 0.03, population covariance, mean over the valid (unpadded) map and over channels.

    ``data_range`` is the dynamic range L in [0, 1] units (inputs are converted first), so 1.0 means the full range;
    it equals scikit-image's ``structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1.0 (or 255 for uint8), channel_axis=-1)``.

    >>> x = torch.rand(2, 3, 32, 32)
    >>> ssim(x, x)                                    # identical images -> 1
    tensor([1., 1.])
    """
    x, y = _pair(a, b, value_range)
    return _ssim(x, y, data_range)


def _psnr(x: Tensor, y: Tensor, data_range: float) -> Tensor:
    mse = (x - y).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse)  # mse == 0 -> inf


def psnr(a: Any, b: Any, *, data_range: float = 1.0, value_range: tuple[float, float] | None = None) -> Tensor:
    """Peak signal-to-noise ratio per image pair in dB, ``10 * log10(data_range**2 / MSE)`` over C, H, W.

    Identical images have MSE 0 and give ``inf`` (not an error): filter with ``torch.isfinite`` before averaging.

    >>> psnr(torch.zeros(1, 3, 8, 8), torch.full((1, 3, 8, 8), 0.1))   # MSE 0.01 -> 20 dB
    tensor([20.])
    """
    x, y = _pair(a, b, value_range)
    return _psnr(x, y, data_range)


def latent_rmse(a: Tensor, b: Tensor) -> Tensor:
    """Root mean square difference per item of two latent batches ``(B, ...)``, in the latents' own units."""
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise SdlabError("latent_rmse takes torch tensors", a_type=type(a).__name__, b_type=type(b).__name__)
    if a.shape != b.shape or a.ndim < 2:
        raise SdlabError(
            "latent_rmse needs two batches (B, ...) of the same shape",
            a_shape=tuple(a.shape),
            b_shape=tuple(b.shape),
        )
    if not (a.is_floating_point() and b.is_floating_point()):
        raise SdlabError("latents must be float tensors", a_dtype=str(a.dtype), b_dtype=str(b.dtype))
    dtype = torch.promote_types(torch.promote_types(a.dtype, b.dtype), torch.float32)
    return (a.to(dtype) - b.to(dtype)).pow(2).flatten(1).mean(1).sqrt()


# ---------------------------------------------------------------------------------------------------------------
# LPIPS


def lpips_backbone_path(net: str = "alex") -> Path:
    """Where torchvision keeps (and sdlab looks for) the ImageNet backbone of LPIPS ``net``."""
    _check_net(net)
    return Path(torch.hub.get_dir()) / "checkpoints" / LPIPS_NETS[net][0]


def _check_net(net: str, version: str = "0.1") -> None:
    if net not in LPIPS_NETS:
        raise SdlabError(f"unknown LPIPS network {net!r}", net=net, hint=closest(net, LPIPS_NETS))
    if version not in ("0.0", "0.1"):
        raise SdlabError(f"unknown LPIPS version {version!r}", version=version, hint="use '0.1' (or '0.0')")


def _download(url: str, path: Path) -> None:
    """Fetch ``url`` to ``path`` (temp file + rename), checking the SHA-256 prefix torchvision puts in file names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(tmp, "wb") as f:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                f.write(chunk)
        expected = path.stem.rsplit("-", 1)[-1]
        if not digest.hexdigest().startswith(expected):
            raise OSError(f"SHA-256 {digest.hexdigest()[:8]} does not match the {expected} in the file name")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _backbone_state(net: str) -> dict[str, Tensor]:
    """The torchvision ImageNet weights of ``net``: from the cache, else downloaded, else a SdlabError saying how."""
    path = lpips_backbone_path(net)
    name, url = LPIPS_NETS[net]
    how = f"download {url} and put it in {path.parent} (or set TORCH_HOME)"
    if not path.exists():
        if environment.offline():
            raise SdlabError(
                f"LPIPS needs the torchvision backbone {name}, which is not cached, and downloads are off",
                file=name,
                url=url,
                folder=str(path.parent),
                hint=how + "; or unset HF_HUB_OFFLINE / SDLAB_OFFLINE",
            )
        try:
            _download(url, path)
        except OSError as e:
            raise SdlabError(
                f"LPIPS needs the torchvision backbone {name} and could not download it ({e})",
                file=name,
                url=url,
                folder=str(path.parent),
                hint=how,
            ) from e
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file; torch raises several types
        raise SdlabError(
            f"could not read the LPIPS backbone {name} ({e})", file=str(path), hint="delete it and " + how
        ) from e


def _load_backbone(model: Any, state: dict[str, Tensor], net: str) -> None:
    """Copy torchvision's ``features.<i>.*`` weights into lpips' ``slice<k>.<i>.*`` modules (same layer indices)."""
    mapped = {}
    for name in model.net.state_dict():
        source = "features." + name.split(".", 1)[1]
        if source not in state:
            raise SdlabError(f"the {net} backbone checkpoint lacks {source}", file=LPIPS_NETS[net][0])
        mapped[name] = state[source]
    model.net.load_state_dict(mapped)


def _lpips_model(net: str, version: str, pretrained_backbone: bool, device: torch.device) -> Any:
    """The LPIPS module for (net, version, backbone, device), built once and cached; SdlabError if unavailable."""
    _check_net(net, version)
    key = (net, version, pretrained_backbone, str(device))
    if key in _LPIPS_MODELS:
        return _LPIPS_MODELS[key]
    try:
        import lpips as lpips_pkg
    except ImportError as e:
        raise SdlabError("LPIPS needs the lpips package", hint='pip install "sdlab[metrics]"') from e
    state = _backbone_state(net) if pretrained_backbone else None
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        torch.manual_seed(RANDOM_BACKBONE_SEED)  # a seeded random backbone; replaced below when pretrained
        warnings.simplefilter("ignore")  # torchvision's deprecation notice for lpips' `pretrained=` argument
        model = lpips_pkg.LPIPS(net=net, version=version, pretrained=True, pnet_rand=True, verbose=False)
    if state is not None:
        _load_backbone(model, state, net)
    model = model.eval().requires_grad_(False).to(device)
    _LPIPS_MODELS[key] = model
    return model


def lpips_random_backbone() -> bool:
    """Whether ``SDLAB_LPIPS_RANDOM_BACKBONE`` asks LPIPS for its seeded random backbone (tests, benchmarks)."""
    return environment.flag(RANDOM_BACKBONE_ENV)


def _use_pretrained(pretrained_backbone: bool | None) -> bool:
    return (not lpips_random_backbone()) if pretrained_backbone is None else pretrained_backbone


def _lpips(x: Tensor, y: Tensor, model: Any, resize_to: int | None) -> Tensor:
    if x.shape[1] != 3:
        raise SdlabError("LPIPS needs RGB images (3 channels)", shape=tuple(x.shape), hint="x.expand(-1, 3, -1, -1)")
    x, y = x.float(), y.float()
    h, w = x.shape[-2:]
    if resize_to is not None and min(h, w) < resize_to:
        scale = resize_to / min(h, w)
        size = (max(resize_to, round(h * scale)), max(resize_to, round(w * scale)))
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
    with torch.no_grad():
        return model(2 * x - 1, 2 * y - 1).reshape(-1)


def lpips(
    a: Any,
    b: Any,
    *,
    net: str = "alex",
    version: str = "0.1",
    resize_to: int | None = LPIPS_MIN_SIZE,
    value_range: tuple[float, float] | None = None,
    pretrained_backbone: bool | None = None,
) -> Tensor:
    """LPIPS distance per image pair (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features"),
    through the ``lpips`` package: v0.1 linear heads on an ImageNet AlexNet (or ``net="vgg"``/``"squeeze"``).

    Images whose shorter side is below ``resize_to`` (64) are upsampled bilinearly so that it is ``resize_to``
    (``None``: never). The backbone comes from ``$TORCH_HOME/hub/checkpoints`` (see :func:`lpips_backbone_path`),
    downloaded once when online; offline without it this raises a SdlabError naming the file, URL and folder.
    ``pretrained_backbone=False`` (or env ``SDLAB_LPIPS_RANDOM_BACKBONE=1``) uses a seeded random backbone: right
    plumbing, meaningless numbers, for tests only. No gradients are kept.

    >>> x = torch.rand(2, 3, 64, 64)
    >>> lpips(x, x, pretrained_backbone=False)        # d(x, x) = 0
    tensor([0., 0.])
    """
    x, y = _pair(a, b, value_range)
    return _lpips(x, y, _lpips_model(net, version, _use_pretrained(pretrained_backbone), x.device), resize_to)


def lpips_unavailable() -> str | None:
    """None when LPIPS can be computed here, else why not. Never downloads: the backbone must be cached."""
    if importlib.util.find_spec("lpips") is None:
        return 'the lpips package is not installed (pip install "sdlab[metrics]")'
    if not lpips_random_backbone() and not lpips_backbone_path("alex").exists():
        name, url = LPIPS_NETS["alex"]
        return f"its AlexNet backbone {name} is not cached in {lpips_backbone_path('alex').parent} (from {url})"
    try:
        blank = torch.zeros(1, 3, LPIPS_MIN_SIZE, LPIPS_MIN_SIZE)
        lpips(blank, blank)
    except SdlabError as e:
        return e.message
    return None


# ---------------------------------------------------------------------------------------------------------------
# several at once


def compare(
    a: Any,
    b: Any,
    *,
    metrics: Sequence[str] | None = None,
    value_range: tuple[float, float] | None = None,
    data_range: float = 1.0,
    net: str = "alex",
    version: str = "0.1",
    resize_to: int | None = LPIPS_MIN_SIZE,
    pretrained_backbone: bool | None = None,
    skip_unavailable: bool = False,
) -> dict[str, Tensor]:
    """Several metrics of the same image pairs at once, ``{name: (batch,) tensor}`` in the order asked.

    ``metrics=None`` means lpips, ssim and psnr, where lpips is dropped with a warning when its package or weights are
    unavailable. Naming "lpips" explicitly makes that an error, unless ``skip_unavailable=True`` (drop + warn).
    """
    names = tuple(DEFAULT_METRICS if metrics is None else metrics)
    for name in names:
        if name not in METRICS:
            raise SdlabError(f"unknown metric {name!r}", metric=name, hint=closest(name, METRICS))
    if "lpips" in names:
        _check_net(net, version)  # a bad option is an error even where a missing backbone would only warn
    x, y = _pair(a, b, value_range)
    out: dict[str, Tensor] = {}
    for name in names:
        if name == "lpips":
            try:
                model = _lpips_model(net, version, _use_pretrained(pretrained_backbone), x.device)
            except SdlabError as e:
                if metrics is not None and not skip_unavailable:
                    raise
                warnings.warn(f"LPIPS skipped: {e}", stacklevel=2)
                continue
            out[name] = _lpips(x, y, model, resize_to)
        elif name == "ssim":
            out[name] = _ssim(x, y, data_range)
        else:
            out[name] = _psnr(x, y, data_range)
    return out


def describe_metrics(
    *,
    net: str = "alex",
    version: str = "0.1",
    resize_to: int | None = LPIPS_MIN_SIZE,
    pretrained_backbone: bool | None = None,
    data_range: float = 1.0,
) -> str:
    """One line saying exactly how sdlab measures, to store next to results."""
    _check_net(net, version)
    backbone = "ImageNet torchvision" if _use_pretrained(pretrained_backbone) else "RANDOM (seeded, test only)"
    resize = (
        f"images with a side under {resize_to} px upsampled bilinearly to {resize_to} px first"
        if resize_to
        else "no resizing"
    )
    return (
        f"LPIPS v{version} ({net}, {backbone} backbone; {resize}); "
        f"SSIM Wang et al. 2004 ({SSIM_WIN}x{SSIM_WIN} Gaussian sigma {SSIM_SIGMA}, K1 {SSIM_K1}, K2 {SSIM_K2}, "
        f"population covariance, valid region, mean over channels, data range {data_range:g} on [0, 1] images); "
        f"PSNR 10*log10({data_range:g}^2/MSE) dB on [0, 1] images (inf when identical); latent RMSE in latent units"
    )
