"""The full specification of one image: everything that changes its pixels, frozen and hashable.

Every saved image and every results row carries one, so any result can be reproduced and looked up.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import asdict, dataclass, field, fields
from functools import cache
from typing import Any

__all__ = ["RunSpec", "versions"]


@cache
def versions() -> dict[str, str]:
    """Versions of the packages that can change results (recorded with every spec)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("sdlab", "torch", "diffusers", "transformers"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


@dataclass(frozen=True)
class RunSpec:
    """One image's recipe. Field names follow sdlab's API; :meth:`to_a1111` maps them to A1111's keys."""

    prompt: str
    seed: int
    negative_prompt: str = ""
    sampler: str = "DPM++ 2M"  # as the user named it (A1111, ComfyUI or sdlab spelling)
    sampler_key: str = "dpmpp_2m"  # sdlab's canonical algorithm id
    schedule: str = "Automatic"  # as named; the resolved schedule is in schedule_resolved
    schedule_resolved: str = "karras"
    steps: int = 20
    cfg: float = 7.0
    width: int = 64
    height: int = 64
    model: str = "embedded"
    model_hash: str = ""
    clip_skip: int = 1
    rng: str = "GPU"
    ensd: int = 0
    sigma_min: float | None = None
    sigma_max: float | None = None
    rho: float | None = None
    start_step: int = 0
    end_step: int | None = None
    add_noise: bool = True
    return_leftover_noise: bool = False
    sampler_options: tuple[tuple[str, Any], ...] = ()  # sorted (name, value) pairs: eta, s_churn, ...
    device: str = "cpu"
    dtype: str = "float32"
    versions: tuple[tuple[str, str], ...] = field(default_factory=lambda: tuple(sorted(versions().items())))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (options and versions as dicts)."""
        d = asdict(self)
        d["sampler_options"] = dict(self.sampler_options)
        d["versions"] = dict(self.versions)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        names = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        d["sampler_options"] = tuple(sorted(dict(d.get("sampler_options", {})).items()))
        if "versions" in d:
            d["versions"] = tuple(sorted(dict(d["versions"]).items()))
        return cls(**d)

    def key(self, *, with_versions: bool = True) -> str:
        """SHA-256 of the canonical JSON of the spec: the identity of its result."""
        d = self.to_dict()
        if not with_versions:
            d.pop("versions")
        blob = json.dumps(d, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def to_a1111(self) -> dict[str, Any]:
        """A1111 infotext parameters (``prompt``, ``negative_prompt`` and A1111's keys)."""
        from sdlab.samplers.catalogue import resolve_sampler

        resolved = resolve_sampler(self.sampler)
        opts = dict(self.sampler_options)
        p: dict[str, Any] = {
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "Steps": self.steps,
            "Sampler": resolved.info.a1111 or resolved.label,
            "Schedule type": _a1111_schedule_label(self.schedule),
            "CFG scale": self.cfg,
            "Seed": self.seed,
            "Size": f"{self.width}x{self.height}",
            "Model hash": self.model_hash[:10] if self.model_hash else None,
            "Model": self.model,
            "Clip skip": self.clip_skip if self.clip_skip != 1 else None,
            "RNG": self.rng if self.rng != "GPU" else None,
        }
        eta = opts.get("eta")
        if eta is not None:
            key = "Eta DDIM" if resolved.info.a1111_eta == "ddim" else "Eta"
            default = 0.0 if key == "Eta DDIM" else 1.0
            if eta != default:
                p[key] = eta
        if self.ensd and resolved.info.uses_ensd and eta != 0:
            p["ENSD"] = self.ensd
        for name, label in (
            ("s_churn", "Sigma churn"),
            ("s_tmin", "Sigma tmin"),
            ("s_tmax", "Sigma tmax"),
            ("s_noise", "Sigma noise"),
        ):
            if name in opts:
                p[label] = opts[name]
        for name, label in (
            ("sigma_min", "Schedule min sigma"),
            ("sigma_max", "Schedule max sigma"),
            ("rho", "Schedule rho"),
        ):
            if getattr(self, name) is not None:
                p[label] = getattr(self, name)
        p["Version"] = f"sdlab {dict(self.versions).get('sdlab', '')}".strip()
        return {k: v for k, v in p.items() if v is not None}


_A1111_SCHEDULE_LABELS = {
    "automatic": "Automatic",
    "uniform": "Uniform",
    "karras": "Karras",
    "exponential": "Exponential",
    "polyexponential": "Polyexponential",
    "sgm_uniform": "SGM Uniform",
    "kl_optimal": "KL Optimal",
    "kl_optimal_a1111": "KL Optimal",
    "align_your_steps": "Align Your Steps",
    "simple": "Simple",
    "normal": "Normal",
    "ddim": "DDIM",
    "beta": "Beta",
    "beta_a1111": "Beta",
}


def _a1111_schedule_label(schedule: str) -> str:
    return _A1111_SCHEDULE_LABELS.get(schedule.lower().replace(" ", "_"), schedule)
