"""sdlab: measure diffusion samplers — every A1111 and ComfyUI sampler and schedule, on any Stable Diffusion
checkpoint or on the small embedded model that runs on any CPU.

Quick start::

    import sdlab
    result = sdlab.generate("a red circle above a blue square, sunset sky",
                            sampler="DPM++ 2M", schedule="Karras", steps=20, seeds=[0, 1], trajectory=True)
    result.images            # (2, 3, 64, 64) in [0, 1]
    result.trajectories[0]   # per step: sigma, latent, denoised prediction, NFE, time

    sigmas = sdlab.get_sigmas("karras", 20)                      # a schedule is a tensor
    x = sdlab.sample(my_denoiser, noise * sigmas[0], sigmas, "Euler a")   # any k-diffusion denoiser

Names are lazily imported: ``import sdlab`` loads neither diffusers nor any plotting library.
"""

from __future__ import annotations

from sdlab.deprecation import lazy
from sdlab.errors import SdlabError

__version__ = "0.1.0"

# public name -> module that defines it, in teaching order
_LAZY = {
    "generate": "sdlab.generation",
    "GenerateResult": "sdlab.generation",
    "get_sigmas": "sdlab.samplers.sigmas",
    "list_schedules": "sdlab.schedules",
    "sample": "sdlab.samplers",
    "list_samplers": "sdlab.samplers",
    "resolve_sampler": "sdlab.samplers",
    "load_model": "sdlab.models",
    "unload_models": "sdlab.generation",
    "RunSpec": "sdlab.spec",
    "ImageRNG": "sdlab.noise",
    "parse_infotext": "sdlab.infotext",
    "compare": "sdlab.measure.metrics",
    "ResultsStore": "sdlab.sweeps.store",
    "format_infotext": "sdlab.infotext",
    "read_run": "sdlab.rerun",
}

__all__ = ["SdlabError", *_LAZY]


__getattr__, __dir__ = lazy(__name__, _LAZY)
