# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 · Ground truth: every sampler's real error
#
# ![Samplers' paths beside the exact ODE solution](../figures/08_ground_truth/trajectories.png)
#
# On a real model, "convergence" is measured against another run's high-step image, which has errors of its
# own, and the network's error mixes in. Here the model is **exact**: the posterior mean E[x0 | x] of a known
# distribution. Its probability-flow ODE then has a true solution, and every sampler's true error, order of
# accuracy and error per model evaluation can be measured exactly.
#
# **What you will learn**
# - how an exact denoiser (a Gaussian mixture's posterior mean) plugs into every A1111 sampler;
# - how to get the true ODE solution, with an error estimate of its own;
# - what each sampler's empirical order of accuracy is, and why some differ from their paper;
# - what the final jump from sigma_min to 0 costs;
# - what "ancestral samplers never converge" really means: the path does not settle, the distribution does.
#
# **Prerequisites**: the earlier notebooks on schedules and samplers (`sdlab.get_sigmas`, `sdlab.sample`).
# Smoke mode runs in well under a minute on a CPU.

# %% tags=["parameters"]
smoke = True
seed = 0
device = "cpu"  # exact denoisers are cheap: everything here runs on the CPU
out_dir = None  # None: build/lab/08_ground_truth/ (not committed); make figures: figures/08_ground_truth

# %%
import torch

from sdlab import groundtruth as gt
from sdlab.lab.notebooks import output_dir
from sdlab.viz import groundtruth as plots

torch.set_num_threads(1)  # the tensors are tiny: one thread avoids synchronisation overhead
out = output_dir("08_ground_truth", out_dir)  # where this notebook's figures go
n = 32 if smoke else 256  # noise samples per run
steps = (8, 16, 32) if smoke else (8, 12, 16, 24, 32, 48, 64, 96, 128)

# %% [markdown]
# ## Step 1 · An exact denoiser
#
# `gt.toy_mixture()` is a 2-D mixture of 6 Gaussians. Calling it is the exact denoiser D(x, sigma) in the
# k-diffusion convention, and it carries SD's training sigma table, so every A1111 schedule and sampler works on
# it unchanged. Here is the distribution as the denoiser sees it at growing noise levels.

# %%
dist = gt.toy_mixture()
print(dist, "sigma range", round(dist.sigma_min, 4), "->", round(dist.sigma_max, 2))
fig = plots.plot_densities(dist, (0.0, 0.1, 0.3, 1.0), path=out / "densities.png")

# %%
x = torch.tensor([[0.0, 0.0], [2.0, 2.0]], dtype=torch.float64)
for sigma in (0.1, 1.0, 10.0):
    print(sigma, dist(x, torch.full((2,), sigma, dtype=torch.float64)).numpy().round(3))

# %% [markdown]
# At large sigma every x is denoised to the data mean; at small sigma to the nearest component.
#
# **Exercise**: make your own `gt.GaussianMixture(means, stds, weights)` with two far-apart components and
# look at D along the line between them at sigma 0.5. Where does it jump?

# %% [markdown]
# ## Step 2 · The true solution
#
# `gt.true_solution` integrates dx/dsigma = (x - D(x, sigma)) / sigma with scipy's DOP853 in float64 at
# rtol 1e-12, twice (tolerance t and t/100), and reports the largest difference as its error estimate.

# %%
z = torch.randn(6, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
truth = gt.true_solution(dist, z * dist.sigma_max, dist.sigma_max, dist.sigma_min)
print(f"error estimate {truth.error_estimate:.1e} after {truth.nfe} evaluations")

# %% [markdown]
# ## Step 3 · Trajectories beside the truth
#
# Each sampler at 8 steps from the same 6 noise samples (red: its state at each step, black x: its result),
# over the data density, with the exact path from the same start in green (`gt.true_path` on a fine grid).
# `gt.run_sampler` runs a sampler by its A1111 name.

# %%
names = ["Euler", "Heun", "DPM2", "LMS", "DPM++ 2M", "DDIM", "PLMS", "UniPC"]
runs = {name: gt.run_sampler(name, dist, z, steps=8, record=True) for name in names}
fig = plots.plot_trajectories(dist, runs, path=out / "trajectories.png")  # solves each run's true path too

# %% [markdown]
# The samplers' errors are made where trajectories bend towards a component (sigma ~ 0.1-1). DDIM, PLMS and
# UniPC run on A1111's own timesteps: they ignore the schedule, start at their own sigma from A1111's
# `noise * sqrt(1 + sigma^2)`, and end at a training sigma instead of sigma_min.
#
# ## Step 4 · Error against steps, and the order of accuracy
#
# `gt.error_vs_steps` runs every deterministic A1111 sampler (stochastic ones at eta 0) on Karras schedules that
# stop at sigma_min, and measures each result against the true solution at its own end sigma.

# %%
df = gt.error_vs_steps(gt.A1111_DETERMINISTIC, steps=steps, dist=dist, n=n, seed=seed)
fig = plots.plot_error_vs_steps(df, metric="median_error", path=out / "error_vs_steps.png")

# %%
fits = gt.fit_order(df, metric="median_error", steps_range=(min(steps), max(steps)))
fits[fits.x == "steps"][["sampler", "order", "ci_low", "ci_high", "r2", "claimed_order", "note"]].round(2)

# %% [markdown]
# Euler ~1; Heun, DPM2, DPM++ 2M ~2; LMS 3 or more. DDIM is Euler in sigma (~1). PLMS's Adams-Bashforth
# weights assume equal steps in t, but A1111 applies them to unequal steps in sigma: ~2, not 4. UniPC as A1111
# runs it is ~1: its time-uniform grid ends with one big step (sigma 0.12 -> 0.03) that `lower_order_final`
# takes at first order. DPM adaptive ignores the step count altogether.
#
# **Exercise**: compare the `rms_error` fits with the `median_error` ones. A few trajectories start near the
# boundary between two components, where the flow stretches any error; which sampler sends one of them into
# the wrong component, and up to how many steps?

# %% [markdown]
# ## Step 5 · Error per model evaluation
#
# Heun and DPM2 cost two evaluations per step. Against NFE the picture changes:

# %%
fig = plots.plot_error_vs_steps(df, x="nfe", metric="median_error", path=out / "error_vs_nfe.png")

# %% [markdown]
# ## Step 6 · The final jump to sigma 0
#
# A1111 schedules end with a jump from sigma_min to 0. The Euler family takes it as a plain denoise, LMS
# extrapolates, DPM fast and DPM adaptive stop at sigma_min. `denoise_gap` is the error of a perfect plain
# denoise from the exact state: no number of steps goes below it.

# %%
final = gt.final_step_error(
    ["Euler", "Heun", "LMS", "DPM++ 2M", "DPM fast"], steps=steps[-2:], dist=dist, n=n, statistic="median"
)
final.pivot_table(index=["sampler", "steps"], columns="metric", values="value", sort=False)

# %% [markdown]
# **Exercise**: rerun with `schedules=("exponential",)`. Does the final gap change? Why (hint: which sigma is
# last before 0)?
#
# ## Step 7 · Ancestral samplers: the path does not settle, the distribution does
#
# With eta 1 every step adds fresh noise. `gt.distribution_vs_steps` measures the MMD between the results and
# true samples (noise floor: two independent true sets), and how far each seed's result moves between N and
# N + 1 steps and between N and 2N steps.

# %%
anc = ["Euler a", "DPM++ SDE", "DPM++ 2M"]  # DPM++ 2M: a deterministic control
dd = gt.distribution_vs_steps(anc, (4, 16) if smoke else (4, 8, 16, 32, 64), dist=dist, n=500 if smoke else 2000)
fig = plots.plot_mmd_vs_steps(dd, path=out / "mmd_vs_steps.png")

# %%
g = torch.Generator().manual_seed(seed + 1)
x0, z500 = dist.sample(500, g), torch.randn(500, 2, generator=g, dtype=torch.float64)
sets = {f"Euler a, {k} steps": gt.run_sampler("Euler a", dist, z500, steps=k, eta=1.0, x0=x0).x_end for k in (4, 16)}
truth_set = dist.sample(500, g) + dist.sigma_min * torch.randn(500, 2, generator=g, dtype=torch.float64)
fig = plots.plot_samples(dist, sets, truth=truth_set, sigma=dist.sigma_min, path=out / "ancestral_samples.png")

# %% [markdown]
# Euler a's results at N and 2N steps stay far apart (the k-th noise draw lands at a very different sigma),
# yet the MMD falls to the noise floor: the distribution converges while no single path does. Between N and
# N + 1 steps the draws land at nearly the same sigmas, so even the paths move less. DPM++ SDE reads one
# Brownian path indexed by sigma: its paths settle too, slowly.
#
# ## Step 8 · A memorising model: the ideal denoiser of a dataset
#
# `gt.IdealDenoiser.from_scenes` is the exact denoiser of a finite set of training scenes (Karras et al. 2022,
# eq. 57): a model that memorised its data. Its ODE carries every noise sample onto a training image.

# %%
ideal = gt.IdealDenoiser.from_scenes(n=60 if smoke else 300, size=8, seed=seed)
noise = torch.randn(8, ideal.dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
result = gt.run_sampler("DPM++ 2M", ideal, noise, steps=20, stop_at_sigma_min=False).x_end
nearest = torch.cdist(result, ideal.data).min(dim=1)
print("distance to the nearest training scene:", nearest.values.numpy().round(4))
fig = plots.plot_image_grid(torch.cat([result, ideal.data[nearest.indices]]), ideal.shape, path=out / "ideal.png")

# %% [markdown]
# Top row: samples; bottom row: their nearest training scenes. They are the same images.
#
# **Exercise**: run `gt.error_vs_steps(["Euler", "DPM++ 2M"], dist=ideal, n=8)`. Is the order the same as on
# the smooth mixture?
#
# ## Going further
# - `benchmarks/bench_groundtruth_orders.py` prints the full table of orders (16-64 steps) and the ancestral
#   table; read its notes on why LMS and DPM++ 3M fall towards order 2 past 64 steps (their first-order
#   warm-up step) and why DPM fast's order depends on `steps % 3`.
# - Try other schedules: `gt.error_vs_steps(..., schedules=("karras", "exponential", "Align Your Steps"))`.
# - `gt.run_sampler(..., float64_times=False)` keeps k-diffusion's float32 log-SNR times for DPM fast and
#   DPM adaptive: how large is that rounding floor?
