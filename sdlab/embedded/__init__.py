"""The embedded default model: a miniature Stable Diffusion trained by sdlab on procedural scenes, CPU-sized.

>>> from sdlab.embedded import pipeline_dir
>>> folder = pipeline_dir()   # a diffusers StableDiffusionPipeline folder, checksums verified
>>> # StableDiffusionPipeline.from_pretrained(folder, torch_dtype=torch.float32)  -> 64x64 images

Weights are stored as float16 safetensors; load them as float32 on a CPU. The scene and caption vocabulary and
the architecture are in :mod:`.vocabulary` and :mod:`.arch` (floor 3, what loading the model needs); the data,
the training recipe and the evaluation are in :mod:`.training` (floor 5); ``MODEL_CARD.md`` has the numbers.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path

from sdlab.errors import SdlabError

__all__ = ["WEIGHTS_DIR", "pipeline_dir", "classifier_dir", "tiny_decoder_dir", "verify_folder", "write_checksums"]

WEIGHTS_DIR = Path(__file__).parent / "weights"
_RESTORE = (
    "reinstall sdlab (pip install --force-reinstall sdlab) or retrain the weights with "
    "`python scripts/train_embedded.py` (add --device cuda on a GPU)"
)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_checksums(folder: str | Path) -> Path:
    """Write ``folder/checksums.json``: the SHA-256 of every other file under ``folder`` (relative paths)."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "checksums.json")
    sums = {p.relative_to(folder).as_posix(): _sha256(p) for p in files}
    path = folder / "checksums.json"
    path.write_text(json.dumps(sums, indent=1, sort_keys=True) + "\n")
    return path


def verify_folder(folder: str | Path) -> Path:
    """Check every file listed in ``folder/checksums.json``; raise :class:`SdlabError` naming a bad one."""
    folder = Path(folder)
    listing = folder / "checksums.json"
    if not listing.is_file():
        raise SdlabError("the embedded model's checksums.json is missing", file=str(listing), hint=_RESTORE)
    try:
        sums = json.loads(listing.read_text())
    except (OSError, ValueError) as err:
        raise SdlabError(f"cannot read {listing.name}: {err}", file=str(listing), hint=_RESTORE) from err
    for name, expected in sums.items():
        path = folder / name
        if not path.is_file():
            raise SdlabError("an embedded model file is missing", file=str(path), hint=_RESTORE)
        if _sha256(path) != expected:
            raise SdlabError(
                "an embedded model file is corrupt or truncated (SHA-256 mismatch)", file=str(path), hint=_RESTORE
            )
    return folder


@cache
def _verified(folder: str) -> Path:
    return verify_folder(folder)


def pipeline_dir(folder: str | Path | None = None) -> Path:
    """The shipped ``StableDiffusionPipeline`` folder (``weights/mini-sd``), checksums verified once per process."""
    return _verified(str(Path(folder) if folder is not None else WEIGHTS_DIR / "mini-sd"))


def classifier_dir(folder: str | Path | None = None) -> Path:
    """The shipped attribute classifier folder (``weights/classifier``), checksums verified once per process."""
    return _verified(str(Path(folder) if folder is not None else WEIGHTS_DIR / "classifier"))


def tiny_decoder_dir(folder: str | Path | None = None) -> Path:
    """The shipped tiny decoder (``weights/mini-sd-taesd``, a diffusers ``AutoencoderTiny`` folder distilled from
    the embedded VAE; see :mod:`sdlab.models.tiny_vae`), checksums verified once per process."""
    return _verified(str(Path(folder) if folder is not None else WEIGHTS_DIR / "mini-sd-taesd"))
