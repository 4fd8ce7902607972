"""Ground truth for samplers: exact denoisers, the true PF-ODE solution, and each sampler's real error and order.

>>> from sdlab import groundtruth as gt
>>> gmm = gt.toy_mixture()                                    # exact E[x0 | x] of a 2-D Gaussian mixture
>>> df = gt.error_vs_steps(["Euler", "Heun"], steps=(8, 16, 32), dist=gmm, n=32)
>>> gt.fit_order(df)[["sampler", "x", "order", "ci_low", "ci_high"]]   # Euler ~1, Heun ~2

Modules: :mod:`~sdlab.groundtruth.denoisers` (``GaussianMixture``, ``IdealDenoiser``), :mod:`~sdlab.groundtruth.ode`
(``true_solution``, ``true_path``), :mod:`~sdlab.groundtruth.experiments` (error vs steps, order fits, MMD of the
stochastic samplers) and :mod:`~sdlab.groundtruth.plots` (matplotlib, imported on use).
"""

from __future__ import annotations

from sdlab.groundtruth.denoisers import GaussianMixture, IdealDenoiser, toy_mixture
from sdlab.groundtruth.experiments import (
    A1111_DETERMINISTIC,
    A1111_ETA0,
    A1111_STOCHASTIC,
    claimed_order,
    distribution_vs_steps,
    error_vs_steps,
    final_step_error,
    fit_order,
    ignores_schedule,
    mmd,
    run_sampler,
)
from sdlab.groundtruth.ode import TrueSolution, true_path, true_solution

__all__ = [
    "GaussianMixture",
    "IdealDenoiser",
    "toy_mixture",
    "TrueSolution",
    "true_solution",
    "true_path",
    "run_sampler",
    "claimed_order",
    "ignores_schedule",
    "error_vs_steps",
    "final_step_error",
    "fit_order",
    "mmd",
    "distribution_vs_steps",
    "A1111_DETERMINISTIC",
    "A1111_ETA0",
    "A1111_STOCHASTIC",
]
