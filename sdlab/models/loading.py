"""Load Stable Diffusion checkpoints the way users have them, as k-diffusion denoisers with A1111's semantics.

>>> model = load_model("dreamshaper_631BakedVae.safetensors")      # an A1111 user's single file
>>> model = load_model("stabilityai/stable-diffusion-xl-base-1.0")  # a hub id (or a local diffusers folder)
>>> cond = model.encode_prompt(["a (very beautiful:1.3) cat"], ["blurry"])
>>> denoiser = model.denoiser(cond, cfg_scale=7.0)                  # D(x, sigma) -> x0, with CFG
>>> x = torch.randn(1, *model.latent_shape(512, 512)) * model.sigmas[-1]
>>> images = model.decode(sampler(denoiser, x, sigmas))             # (1, 3, 512, 512) in [0, 1]

Sources: ``None``/"embedded" (sdlab's small model), a hub id or diffusers folder, a ``.safetensors`` single
file in the original layout (SD 1.x, SD 2.x eps or v, SDXL base: recognised from its keys and shapes and built
from the configs sdlab carries, :mod:`.architectures`, offline; ``config=`` hands it to diffusers' converter with
that config instead), or a pickled ``.ckpt``/``.pt`` with ``allow_pickle=True``. Offline (``SDLAB_OFFLINE=1``,
``HF_HUB_OFFLINE=1`` or ``local_files_only=True``; :func:`sdlab.environment.offline`) only the local Hugging Face
cache is read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import pickle
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sdlab import embedded, environment
from sdlab.errors import SdlabError, closest
from sdlab.models import tiny_vae
from sdlab.models.denoisers import (
    CFGDenoiser,
    DiffusersUNet,
    DiscreteEpsDenoiser,
    DiscreteVDenoiser,
    LCMEpsDenoiser,
    training_sigmas,
)
from sdlab.models.preview import linear_preview, normalised_preview, preview_coefficients
from sdlab.models.prompts import Conditioning, encode_prompt
from sdlab.models.single_file import (
    SingleFileArchitecture,
    load_original,
    read_safetensors_header,
    recognise_single_file,
)

__all__ = [
    "SDModel",
    "load_model",
    "wrap_pipeline",
    "resolve_device",
    "read_safetensors_header",
    "sha256_file",
    "folder_sha256",
    "KINDS",
    "recognise_single_file",
    "SingleFileArchitecture",
]

DECODE_MODES = ("full", "tiny", "preview")  # the VAE; TAESD (tiny_vae.py); A1111's linear "Approx cheap"

KINDS = ("sd1", "sd2", "sdxl")
PREDICTION_TYPES = ("epsilon", "v_prediction")
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
_DTYPES = {
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
}
_CONFIG_PATTERNS = ["*.json", "*/*.json", "*.txt", "*/*.txt", "*/*.model"]  # a pipeline's configs, no weights
_SUPPORTED_SINGLE_FILES = {"v1": "SD 1.x", "v2": "SD 2.x", "xl_base": "SDXL base"}


@dataclass(eq=False)
class SDModel:
    """A loaded Stable Diffusion pipeline and what sampling needs from it.

    ``sigmas`` is the ascending float32 training sigma table (CPU). ``revision`` is the hub commit a hub id
    resolved to; ``file_sha256`` (computed on first use) the SHA-256 of a single file, or for a folder or an
    in-memory pipeline a SHA-256 over the files (or tensors) it loaded; ``model_hash`` its first 10 hex digits
    (A1111's "Model hash" for single files).
    """

    pipe: Any
    kind: str  # "sd1" | "sd2" | "sdxl"
    prediction_type: str  # "epsilon" | "v_prediction"
    model_id: str
    revision: str | None
    device: torch.device
    dtype: torch.dtype
    latent_channels: int
    vae_scale_factor: int
    sigmas: Tensor
    source: Path | None = None  # the file or folder the weights came from
    variant: str | None = None
    preview_map: tuple[Tensor, Tensor | None] | None = field(default=None, repr=False)
    _sha256: str | None = field(default=None, repr=False)

    @property
    def is_sdxl(self) -> bool:
        return self.kind == "sdxl"

    @property
    def file_sha256(self) -> str:
        """SHA-256 of the single file, or over the folder's loaded files or the pipeline's tensors (cached)."""
        if self._sha256 is None:
            if self.source is not None and self.source.is_file():
                self._sha256 = sha256_file(self.source)
            elif self.source is not None:
                self._sha256 = folder_sha256(self.source, self.variant)
            else:
                self._sha256 = _pipeline_sha256(self.pipe)
        return self._sha256

    @property
    def model_hash(self) -> str:
        """A1111's short "Model hash": the first 10 hex digits of :attr:`file_sha256`."""
        return self.file_sha256[:10]

    @property
    def default_size(self) -> tuple[int, int]:
        """The UNet's native (width, height) in pixels."""
        side = int(self.pipe.unet.config.sample_size) * self.vae_scale_factor
        return side, side

    def identity(self) -> dict[str, Any]:
        """What identifies this model in a results table (hashes the weights on first call)."""
        return {
            "model": self.model_id,
            "revision": self.revision,
            "sha256": self.file_sha256,
            "model_hash": self.model_hash,
            "kind": self.kind,
            "prediction_type": self.prediction_type,
            "dtype": str(self.dtype).removeprefix("torch."),
        }

    def encode_prompt(
        self,
        prompts: list[str],
        negative_prompts: list[str],
        *,
        clip_skip: int = 1,
        size: tuple[int, int] | None = None,
        emphasis: str = "Original",
    ) -> Conditioning:
        """A1111's conditioning for each prompt and negative prompt (see :mod:`sdlab.models.prompts`).

        ``size=(width, height)`` is SDXL's size conditioning (default :attr:`default_size`).
        """
        return encode_prompt(
            self.pipe, prompts, negative_prompts, kind=self.kind, clip_skip=clip_skip, size=size, emphasis=emphasis
        )

    def inner_denoiser(
        self, *, quantize: bool = False, lcm: bool = False
    ) -> DiscreteEpsDenoiser | DiscreteVDenoiser | LCMEpsDenoiser:
        """The UNet as a k-diffusion denoiser without guidance (pass ``encoder_hidden_states=`` etc. per call).

        ``lcm=True``: A1111's denoiser for its "LCM" sampler (:class:`~sdlab.models.denoisers.LCMEpsDenoiser`).
        """
        unet, sigmas = DiffusersUNet(self.pipe.unet), self.sigmas.to(self.device)
        if lcm:
            if self.prediction_type != "epsilon":
                raise SdlabError(
                    "A1111's LCM denoiser reads the UNet as an eps-prediction model",
                    sampler="LCM",
                    model=self.model_id,
                    prediction_type=self.prediction_type,
                    hint="use ComfyUI's 'lcm' sampler name, which keeps the model's own parameterisation",
                )
            return LCMEpsDenoiser(unet, sigmas)
        cls = DiscreteVDenoiser if self.prediction_type == "v_prediction" else DiscreteEpsDenoiser
        return cls(unet, sigmas, quantize=quantize)

    def denoiser(
        self, cond: Conditioning, cfg_scale: float, *, quantize: bool = False, pad: str = "none", lcm: bool = False
    ) -> CFGDenoiser:
        """``D(x, sigma) -> x0`` with A1111's classifier-free guidance at ``cfg_scale``.

        ``quantize`` is A1111's "enable_quantization"; ``pad`` how prompts of different lengths are batched
        (see :class:`~sdlab.models.denoisers.CFGDenoiser`); ``lcm`` A1111's LCM denoiser (its "LCM" sampler).
        """
        if not isinstance(cond, Conditioning):
            raise SdlabError("denoiser needs the Conditioning from encode_prompt", got=type(cond).__name__)
        inner = self.inner_denoiser(quantize=quantize, lcm=lcm)
        return CFGDenoiser(inner, cond.cond, cond.uncond, cfg_scale, pad=pad, empty=cond.empty)

    def _vae(self, dtype: torch.dtype | None = None) -> Any:
        vae = self.pipe.vae
        if dtype is not None and vae.dtype != dtype:
            vae.to(dtype=dtype)
        return vae

    def _vae_dtype(self) -> torch.dtype:
        vae = self.pipe.vae
        if vae.dtype == torch.float16 and vae.config.get("force_upcast", False):
            return torch.float32  # SDXL's VAE overflows in fp16 (diffusers' force_upcast)
        return vae.dtype

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        """Latents (B, C, h, w) to images (B, 3, H, W) float32 on the CPU in [0, 1], one image at a time.

        As A1111 with its default "revert VAE to 32-bit floats" setting, a half-precision VAE that
        produces NaNs is switched to float32 and the image decoded again.
        """
        if latents.ndim != 4 or latents.shape[1] != self.latent_channels:
            raise SdlabError(
                "decode needs (B, C, h, w) latents", shape=tuple(latents.shape), channels=self.latent_channels
            )
        config = self.pipe.vae.config
        shift = config.get("shift_factor") or 0.0
        images = []
        for z in latents:
            z = z[None].to(self.device, torch.float32) * (1.0 / config.scaling_factor) + shift
            vae = self._vae(self._vae_dtype())
            image = vae.decode(z.to(vae.dtype), return_dict=False)[0]
            if not bool(torch.isfinite(image).all()) and vae.dtype != torch.float32:
                vae = self._vae(torch.float32)
                image = vae.decode(z, return_dict=False)[0]
            images.append(((image.float() + 1) / 2).clamp(0, 1).cpu())
        return torch.cat(images)

    @torch.no_grad()
    def encode(self, images: Tensor, *, sample: bool = False, generator: torch.Generator | None = None) -> Tensor:
        """Images (B, 3, H, W) in [0, 1] to scaled latents (B, C, H/f, W/f) float32 on :attr:`device`.

        The posterior mean by default; ``sample=True`` draws from it as A1111's img2img does.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise SdlabError("encode needs (B, 3, H, W) images in [0, 1]", shape=tuple(images.shape))
        self.latent_shape(images.shape[-1], images.shape[-2])
        config = self.pipe.vae.config
        shift = config.get("shift_factor") or 0.0
        vae = self._vae(self._vae_dtype())
        out = []
        for image in images:
            x = (image[None].to(self.device, torch.float32) * 2 - 1).to(vae.dtype)
            dist = vae.encode(x).latent_dist
            z = dist.sample(generator) if sample else dist.mean
            out.append((z.float() - shift) * config.scaling_factor)
        return torch.cat(out)

    def tiny_decode(self, latents: Tensor) -> Tensor:
        """Images (B, 3, H, W) in [0, 1] through the model's tiny decoder (TAESD; see :mod:`.tiny_vae`)."""
        return tiny_vae.tiny_decode(self, latents)

    def decode_as(self, latents: Tensor, mode: str = "full") -> Tensor:
        """Latents to images in [0, 1] by ``mode``: "full" (the VAE), "tiny" (TAESD, a few % of the VAE's cost)
        or "preview" (A1111's cheap linear preview, at latent resolution)."""
        if mode == "full":
            return self.decode(latents)
        if mode == "tiny":
            return self.tiny_decode(latents)
        if mode == "preview":
            return self.preview(latents)
        raise SdlabError(f"unknown decode mode {mode!r}", mode=mode, hint=f"use one of {DECODE_MODES}")

    def preview(self, latents: Tensor) -> Tensor:
        """A1111's cheap latent preview (B, 3, h, w) in [0, 1] at latent resolution (see :mod:`.preview`)."""
        if self.preview_map is None:
            return normalised_preview(latents)
        return linear_preview(latents, *self.preview_map)

    def latent_shape(self, width: int, height: int) -> tuple[int, int, int]:
        """The (channels, height / f, width / f) latent of one ``width`` x ``height`` image."""
        step = math.lcm(8, self.vae_scale_factor)
        if not all(isinstance(v, int) and v > 0 for v in (width, height)) or width % step or height % step:
            w, h = (max(step, int(v) // step * step) if isinstance(v, int) else step for v in (width, height))
            raise SdlabError(
                f"width and height must be positive multiples of {step}",
                width=width,
                height=height,
                hint=f"e.g. {w}x{h}",
            )
        f = self.vae_scale_factor
        return self.latent_channels, height // f, width // f


# --- device --------------------------------------------------------------------------------------------------


def resolve_device(
    device: str | torch.device | None = None, dtype: str | torch.dtype | None = None
) -> tuple[torch.device, torch.dtype]:
    """The device (CUDA, else MPS, else CPU) and dtype (fp16 on CUDA/MPS, fp32 on the CPU) to load on."""
    if device is None:
        if torch.cuda.is_available():
            device = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise SdlabError(f"unknown device {device!r}", device=str(device), hint="use 'cuda', 'mps' or 'cpu'") from exc
    _check_usable(device)
    if dtype is None:
        dtype = torch.float16 if device.type in ("cuda", "mps") else torch.float32
    elif isinstance(dtype, str):
        name = dtype.removeprefix("torch.").lower()
        if name not in _DTYPES:
            raise SdlabError(f"unknown dtype {dtype!r}", dtype=dtype, hint=closest(name, _DTYPES))
        dtype = _DTYPES[name]
    if dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise SdlabError("dtype must be float16, bfloat16 or float32", dtype=str(dtype))
    return device, dtype


def _check_usable(device: torch.device) -> None:
    """SdlabError unless tensors can live on ``device``: an available CUDA index, MPS, the CPU or another backend
    that reports itself available (never "meta", which holds shapes but no data)."""
    where = str(device)
    if device.type == "meta":
        raise SdlabError(
            "the meta device holds no data, so nothing can be generated on it",
            device=where,
            hint="use 'cuda', 'mps' or 'cpu', or leave device out",
        )
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SdlabError("CUDA is not available here", device=where, hint="pass device='cpu' or leave it out")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            hint = f"use cuda:0 .. cuda:{count - 1}"
            raise SdlabError(f"there is no CUDA device {device.index}", device=where, count=count, hint=hint)
        return
    if device.type == "cpu":
        return
    backend = getattr(torch.backends, device.type, None) if device.type == "mps" else getattr(torch, device.type, None)
    is_available = getattr(backend, "is_available", None)
    if not callable(is_available) or not is_available():
        raise SdlabError(
            f"device type {device.type!r} is not available here",
            device=where,
            hint="pass device='cpu' or leave it out (CUDA, else MPS, else the CPU)",
        )


def _offline(local_files_only: bool | None) -> bool:
    if local_files_only is not None:
        return bool(local_files_only)
    return environment.offline()


# --- wrapping a pipeline -------------------------------------------------------------------------------------


def _kind(pipe: Any) -> str:
    if getattr(pipe, "text_encoder_2", None) is not None:
        return "sdxl"
    config = pipe.text_encoder.config
    # SD2's OpenCLIP-H uses gelu and 1024 channels; SD1's CLIP-L quick_gelu.
    if getattr(config, "hidden_act", "quick_gelu") == "gelu" or pipe.unet.config.cross_attention_dim == 1024:
        return "sd2"
    return "sd1"


def wrap_pipeline(
    pipe: Any,
    *,
    model_id: str,
    revision: str | None = None,
    source: str | Path | None = None,
    variant: str | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> SDModel:
    """An :class:`SDModel` around an already loaded diffusers SD 1.x/2.x/XL pipeline (moved to device/dtype)."""
    missing = [n for n in ("unet", "vae", "text_encoder", "tokenizer", "scheduler") if getattr(pipe, n, None) is None]
    if missing:
        raise SdlabError(
            f"{type(pipe).__name__} is not a Stable Diffusion 1.x/2.x/XL text-to-image pipeline",
            missing=", ".join(missing),
            hint="load a StableDiffusionPipeline or StableDiffusionXLPipeline checkpoint",
        )
    prediction_type = pipe.scheduler.config.get("prediction_type", "epsilon")
    if prediction_type not in PREDICTION_TYPES:
        raise SdlabError(
            f"unsupported prediction_type {prediction_type!r}", model=model_id, hint="only epsilon and v_prediction"
        )
    device, dtype = resolve_device(device, dtype)
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            if any(p.dtype != dtype for p in component.parameters()):
                component.to(dtype=dtype)
            component.to(device).eval().requires_grad_(False)
    vae_config = pipe.vae.config
    folder = Path(source) if source is not None and Path(source).is_dir() else None
    kind = _kind(pipe)
    return SDModel(
        pipe=pipe,
        kind=kind,
        prediction_type=prediction_type,
        model_id=model_id,
        revision=revision,
        device=device,
        dtype=dtype,
        latent_channels=int(vae_config.latent_channels),
        vae_scale_factor=2 ** (len(vae_config.block_out_channels) - 1),
        sigmas=training_sigmas(pipe.scheduler.config),
        source=None if source is None else Path(source),
        variant=variant,
        preview_map=preview_coefficients(kind, vae_config, folder),
    )


# --- loading -------------------------------------------------------------------------------------------------


def load_model(
    source: str | Path | None = None,
    *,
    revision: str | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    local_files_only: bool | None = None,
    allow_pickle: bool = False,
    config: str | Path | None = None,
    variant: str | None = None,
) -> SDModel:
    """Load an SD 1.x / 2.x / XL checkpoint as an :class:`SDModel` (see the module docstring for sources).

    ``revision`` pins a hub commit, branch or tag; ``config`` gives a single file a diffusers config of its
    own (a local folder or hub id of the same architecture), read by diffusers' converter; without it sdlab
    recognises SD 1.x, SD 2.x and SDXL base files itself (:func:`recognise_single_file`), offline; the
    prediction type comes from a ``.yaml`` beside the file (A1111's rule), a ``v_pred`` key, the file's
    ``modelspec.prediction_type`` metadata, else for SD 2.x A1111's test forward pass (``_probe_v_prediction``);
    ``variant`` picks weight files such as ``"fp16"``; ``device``/``dtype`` default to CUDA fp16, MPS fp16 or
    CPU fp32.
    """
    device, dtype = resolve_device(device, dtype)
    offline = _offline(local_files_only)
    path = None if source is None or str(source) == "embedded" else Path(str(source)).expanduser()
    where = "the embedded model" if path is None else str(path)
    is_file = path is not None and path.is_file()
    is_hub = path is not None and not path.exists() and not _looks_like_path(str(source))
    if path is not None and not path.exists() and not is_hub:
        raise SdlabError("no such checkpoint file or folder", path=str(path), hint="check the path")
    if config is not None and not is_file:
        raise SdlabError("config= is for single-file checkpoints only", source=where, hint="leave config out")
    if revision is not None and not is_hub:
        raise SdlabError("revision= is for hub ids only", source=where, hint="leave revision out")
    if variant is not None and is_file:
        raise SdlabError("variant= is for diffusers folders and hub ids", source=where, hint="leave variant out")

    if path is None:
        folder = _embedded_folder()
        pipe = _load_folder(folder, dtype=dtype, variant=variant)
        return wrap_pipeline(pipe, model_id="embedded", source=folder, variant=variant, device=device, dtype=dtype)
    if is_file:
        suffix = path.suffix.lower()
        if suffix in PICKLE_SUFFIXES and not allow_pickle:
            raise SdlabError(
                f"'{suffix}' checkpoints are Python pickles, which can run arbitrary code when loaded",
                file=str(path),
                hint="use a .safetensors version, or pass allow_pickle=True only for a file you trust",
            )
        if suffix != ".safetensors" and suffix not in PICKLE_SUFFIXES:
            raise SdlabError(
                "unknown checkpoint file type", file=str(path), hint="pass a .safetensors (or .ckpt) file or a folder"
            )
        pipe = _load_single_file(path, config=config, dtype=dtype, offline=offline)
        return wrap_pipeline(pipe, model_id=path.stem, source=path, device=device, dtype=dtype)
    if not is_hub:  # a local diffusers folder
        pipe = _load_folder(path, dtype=dtype, variant=variant)
        return wrap_pipeline(pipe, model_id=path.name, source=path, variant=variant, device=device, dtype=dtype)
    folder = _download(str(source), revision=revision, offline=offline, variant=variant)
    pipe = _load_folder(folder, dtype=dtype, variant=variant)
    commit = folder.name if folder.parent.name == "snapshots" else revision
    return wrap_pipeline(
        pipe, model_id=str(source), revision=commit, source=folder, variant=variant, device=device, dtype=dtype
    )


def _looks_like_path(text: str) -> bool:
    """A local path rather than a hub id ("owner/name" or "name")."""
    return (
        text.lower().endswith((".safetensors", *PICKLE_SUFFIXES))
        or text.startswith((".", "/", "~", "\\"))
        or text.count("/") > 1
        or "\\" in text
        or bool(re.match(r"^[A-Za-z]:", text))
    )


def _embedded_folder() -> Path:
    return Path(embedded.pipeline_dir())


def _hub_error(exc: Exception, repo_id: str, what: str) -> SdlabError:
    """An SdlabError for a huggingface_hub failure to fetch ``what`` of ``repo_id``."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(exc, (LocalEntryNotFoundError, OfflineModeIsEnabled)):
        return SdlabError(
            f"{what} of {repo_id!r} are not in the local Hugging Face cache and downloads are off (or failed)",
            repo=repo_id,
            hint="run once online (without HF_HUB_OFFLINE / local_files_only) to cache it, "
            "or download the diffusers folder and pass its path",
        )
    if isinstance(exc, GatedRepoError):
        return SdlabError(
            f"{repo_id!r} is gated", repo=repo_id, hint="accept its licence on the hub and `hf auth login`"
        )
    if isinstance(exc, RepositoryNotFoundError):
        return SdlabError(f"no hub repository {repo_id!r}", repo=repo_id, hint="check the id (owner/name) or the path")
    if isinstance(exc, RevisionNotFoundError):
        return SdlabError(f"{repo_id!r} has no such revision", repo=repo_id, hint="check revision=")
    if isinstance(exc, HFValidationError):
        return SdlabError(
            f"{repo_id!r} is neither an existing file or folder nor a valid hub id",
            source=repo_id,
            hint="check the path",
        )
    return SdlabError(f"could not fetch {what} of {repo_id!r}: {exc}", repo=repo_id, hint="check the id and network")


def _hub_exceptions() -> tuple[type[Exception], ...]:
    from huggingface_hub.errors import HFValidationError

    return (OSError, HFValidationError)  # hub errors subclass OSError (HTTP, not found, offline) or ValueError


def _download(repo_id: str, *, revision: str | None, offline: bool, variant: str | None) -> Path:
    """The local snapshot folder of a hub pipeline (downloading it unless offline)."""
    from diffusers import DiffusionPipeline

    try:
        folder = DiffusionPipeline.download(
            repo_id, revision=revision, local_files_only=offline, variant=variant, safety_checker=None
        )
    except _hub_exceptions() as exc:
        raise _hub_error(exc, repo_id, "the pipeline files") from exc
    return Path(folder)


@contextlib.contextmanager
def _quiet_dtype_deprecation() -> Iterator[None]:
    """Newer diffusers renamed ``torch_dtype`` to ``dtype``; older ones know only ``torch_dtype``."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch_dtype.*deprecated", category=FutureWarning)
        yield


def _load_folder(folder: Path, *, dtype: torch.dtype, variant: str | None) -> Any:
    """A diffusers pipeline from a local folder (no network)."""
    from diffusers import DiffusionPipeline
    from safetensors import SafetensorError

    index_file = folder / "model_index.json"
    if not index_file.is_file():
        raise SdlabError(
            "not a diffusers pipeline folder (no model_index.json)",
            folder=str(folder),
            hint="pass the folder that holds model_index.json, or the path of a .safetensors file",
        )
    try:
        index = json.loads(index_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SdlabError(f"unreadable model_index.json: {exc}", file=str(index_file)) from exc
    extra: dict[str, Any] = {}
    if "safety_checker" in index:  # never load (or need) SD 1.x's NSFW classifier
        extra = {"safety_checker": None, "requires_safety_checker": False}
    try:
        with _quiet_dtype_deprecation():
            return DiffusionPipeline.from_pretrained(
                str(folder), torch_dtype=dtype, variant=variant, local_files_only=True, **extra
            )
    except (OSError, ValueError, SafetensorError) as exc:
        raise SdlabError(
            f"could not load the diffusers folder: {exc}",
            folder=str(folder),
            variant=variant,
            hint="the folder is incomplete or corrupt (download it again), or pass the right variant=",
        ) from exc


def _checkpoint_shapes(path: Path) -> dict[str, Tensor]:
    """Every tensor of a single-file checkpoint as an empty meta tensor of its shape (no weights read)."""
    if path.suffix.lower() == ".safetensors":
        header = read_safetensors_header(path)
        return {k: torch.empty(v["shape"], device="meta") for k, v in header.items() if k != "__metadata__"}
    try:  # weights_only: plain tensors and containers only, as diffusers itself loads it
        state = torch.load(path, map_location="meta", weights_only=True)
    except torch.OutOfMemoryError:
        raise
    except (pickle.UnpicklingError, EOFError, OSError, RuntimeError, ValueError) as exc:
        raise SdlabError(
            f"cannot read the pickled checkpoint: {exc}",
            file=str(path),
            hint="the file is truncated, corrupt or not a checkpoint",
        ) from exc
    while isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise SdlabError("the pickled file holds no state dict", file=str(path))
    return {k: v for k, v in state.items() if isinstance(v, Tensor)}


def _config_folder(config: str | Path, *, offline: bool, file: Path) -> Path:
    """A local folder with the diffusers configs (no weights) of ``config``: a folder or a hub id."""
    path = Path(str(config)).expanduser()
    if path.is_dir():
        return path
    if _looks_like_path(str(config)):
        raise SdlabError("no such config folder", config=str(config), hint="pass a diffusers folder or a hub id")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(config), allow_patterns=_CONFIG_PATTERNS, local_files_only=offline))
    except _hub_exceptions() as exc:
        error = _hub_error(exc, str(config), f"the diffusers config {file.name} needs (config=)")
        raise error from exc


def _load_single_file(path: Path, *, config: str | Path | None, dtype: torch.dtype, offline: bool) -> Any:
    """A diffusers pipeline from one original-layout (A1111 / CompVis / SGM) checkpoint file.

    Without ``config`` the architecture is recognised from the file's keys and shapes and built from the
    configs sdlab carries (:mod:`.architectures`), offline; with it, diffusers' converter reads the file.
    """
    shapes = _checkpoint_shapes(path)
    if not any(k.startswith("model.diffusion_model.") for k in shapes):
        raise SdlabError(
            "not a full Stable Diffusion checkpoint (no model.diffusion_model.* weights)",
            file=str(path),
            hint="LoRAs, VAEs and embeddings are not checkpoints; pass a full model",
        )
    if config is None:
        return load_original(path, shapes, dtype=dtype)
    return _load_with_config(path, shapes, config=config, dtype=dtype, offline=offline)


def _load_with_config(
    path: Path, shapes: dict[str, Tensor], *, config: str | Path, dtype: torch.dtype, offline: bool
) -> Any:
    """diffusers' ``from_single_file`` with the diffusers config folder or hub id ``config``."""
    import diffusers
    from diffusers.loaders.single_file_utils import SingleFileComponentError, infer_diffusers_model_type
    from safetensors import SafetensorError

    model_type = infer_diffusers_model_type(shapes)
    if model_type not in _SUPPORTED_SINGLE_FILES:
        raise SdlabError(
            f"unsupported checkpoint type {model_type!r}",
            file=str(path),
            hint="sdlab supports " + ", ".join(_SUPPORTED_SINGLE_FILES.values()) + " text-to-image checkpoints",
        )
    folder = _config_folder(config, offline=offline, file=path)
    try:
        class_name = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))["_class_name"]
    except (OSError, ValueError, KeyError) as exc:
        raise SdlabError("config has no readable model_index.json", config=str(folder)) from exc
    cls = getattr(diffusers, class_name, None)
    if cls is None or not hasattr(cls, "from_single_file"):
        raise SdlabError(f"config describes a {class_name}, which cannot load single files", config=str(folder))
    try:
        with _quiet_dtype_deprecation():
            return cls.from_single_file(str(path), config=str(folder), torch_dtype=dtype, local_files_only=True)
    except torch.OutOfMemoryError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError, SingleFileComponentError) as exc:
        raise SdlabError(
            f"could not load the checkpoint: {exc}",
            file=str(path),
            config=str(folder),
            hint="check that config= matches the checkpoint's architecture, or re-download the file",
        ) from exc


# --- identity ------------------------------------------------------------------------------------------------


def sha256_file(path: str | Path, *, chunk: int = 1 << 24) -> str:
    """Hex SHA-256 of a file (its first 10 digits are A1111's "Model hash")."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


_WEIGHT_SUFFIXES = (".safetensors", ".bin")
_SKIPPED_SUFFIXES = (".ckpt", ".pt", ".pth", ".msgpack", ".onnx", ".pb", ".h5", ".onnx_data")


def _loaded_files(folder: Path, variant: str | None) -> list[Path]:
    """model_index.json and the files of its components that diffusers reads for ``variant``."""
    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    files = [folder / "model_index.json"]
    for name, value in sorted(index.items()):
        sub = folder / name
        if name.startswith("_") or not isinstance(value, list) or value[0] is None or not sub.is_dir():
            continue
        entries = sorted(p for p in sub.rglob("*") if p.is_file() and not p.name.startswith("."))
        has_safetensors = any(p.suffix == ".safetensors" for p in entries)
        for p in entries:
            if p.suffix in _SKIPPED_SUFFIXES or (p.suffix == ".bin" and has_safetensors):
                continue
            if p.suffix in _WEIGHT_SUFFIXES:
                infix = p.name.split(".")[-2] if p.name.count(".") >= 2 else None
                if infix != variant:
                    continue
            files.append(p)
    return files


def _file_digest(path: Path) -> str:
    """SHA-256 of a file; free for Hugging Face cache links, whose LFS blobs are named by it."""
    target = path.resolve()
    if path.is_symlink() and re.fullmatch(r"[0-9a-f]{64}", target.name):
        return target.name
    return sha256_file(target)


def folder_sha256(folder: Path, variant: str | None) -> str:
    """SHA-256 over (relative path, SHA-256) of every file of the folder the pipeline loads."""
    digest = hashlib.sha256()
    for p in _loaded_files(folder, variant):
        digest.update(f"{p.relative_to(folder).as_posix()}\0{_file_digest(p)}\n".encode())
    return digest.hexdigest()


_folder_sha256 = folder_sha256  # the old private name, kept one release for sdlab.sweeps.grid


def _pipeline_sha256(pipe: Any) -> str:
    """SHA-256 over an in-memory pipeline's tensors (by name) and its scheduler config."""
    digest = hashlib.sha256()
    for name, component in sorted(pipe.components.items()):
        if isinstance(component, torch.nn.Module):
            for key, value in sorted(component.state_dict().items()):
                digest.update(f"{name}.{key}:{value.dtype}:{tuple(value.shape)}\n".encode())
                digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    # diffusers' private config keys ("_use_default_values" is a list in set order) differ from process to process
    config = {k: v for k, v in dict(pipe.scheduler.config).items() if not k.startswith("_")}
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    return digest.hexdigest()
