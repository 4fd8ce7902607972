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
# # 01 · A tour of the samplers
#
# ![Every A1111 sampler at several step counts](../figures/01_samplers_tour/grid.png)
#
# A1111's sampler menu has 20 entries. Each is a small numerical method for the same differential equation: it
# walks a noisy latent down a list of noise levels, asking the model at each one what the clean image looks
# like. This notebook shows the one-liner, then the loop behind it, then all 20 side by side.
#
# **What you will learn**
# - how to run any sampler by its A1111 (or ComfyUI) name;
# - what a sampler really is: a loop of a few lines over `sigmas`, built from sdlab's pieces;
# - what the catalogue says about each one: order, model evaluations per step, stochastic or not;
# - how the samplers compare at equal steps and at equal cost, hovering a point to see its image.
#
# **Prerequisites**: `00_quickstart` (generate, schedules, trajectories). Smoke mode runs 4 samplers at 2 step
# counts in about a minute on a CPU; the full run (all 20 samplers, 4 step counts) takes a few minutes.

# %% tags=["parameters"]
model = None  # None: the embedded miniature SD (64x64, CPU); or a hub id, diffusers folder or .safetensors file
smoke = True  # True: 4 samplers x 2 step counts (CI); False: all 20 A1111 samplers x 4 step counts
seeds = [0]
device = "cpu"
out_dir = None  # None: build/lab/01_samplers_tour/ (not committed); make figures: figures/01_samplers_tour

# %%
import pandas as pd
import torch

import sdlab
import sdlab.experiments as X
from sdlab.generation import load
from sdlab.lab.notebooks import listing, output_dir, say
from sdlab.samplers.base import to_d
from sdlab.samplers.catalogue import A1111_SAMPLERS
from sdlab.viz import charts, display

out = output_dir("01_samplers_tour", out_dir)  # where this notebook's figures go
prompt = "a red circle above a blue square, sunset sky"
sd = load(model, device=device)
samplers = ["Euler", "Euler a", "Heun", "DPM++ 2M"] if smoke else list(A1111_SAMPLERS)
step_counts = (3, 6) if smoke else (5, 10, 20, 40)
reference = {"sampler": "DPM++ 2M", "schedule": "Karras", "steps": 12 if smoke else 100}
n = 6 if smoke else 20  # steps for the examples of Steps 1 and 2

# %% [markdown]
# ## Step 1 · One line per sampler
#
# The sampler is a name; everything else stays the same. Same seed, same prompt, four samplers:

# %%
names = samplers[:4]
images = {
    name: sdlab.generate(prompt, sampler=name, steps=n, cfg=5, seeds=seeds[:1], model=sd).images[0] for name in names
}
display.image_strip(images, scale=3)

# %% [markdown]
# ## Step 2 · The loop behind the name
#
# Euler's method, unrolled. `denoiser(x, sigma)` is the model's guess of the clean latent (A1111's classifier-free
# guidance included); `to_d` turns it into the slope dx/dsigma of the probability-flow ODE; each step moves x
# along that slope to the next sigma. The noise is A1111's, for this seed.

# %%
cond = sd.encode_prompt([prompt], [""])
denoiser = sd.denoiser(cond, 5.0)  # D(x, sigma) -> x0
sigmas = sdlab.get_sigmas("Uniform", n, sd)  # A1111's "Automatic" schedule for Euler
x = sdlab.ImageRNG(sd.latent_shape(64, 64), seeds[:1]).first() * sigmas[0]
for i in range(len(sigmas) - 1):
    denoised = denoiser(x, sigmas[i] * x.new_ones(1))
    d = to_d(x, sigmas[i], denoised)  # dx/dsigma = (x - D(x, sigma)) / sigma
    x = x + d * (sigmas[i + 1] - sigmas[i])  # one Euler step
mine = sd.decode(x)[0]

# %%
one_liner = sdlab.generate(prompt, sampler="Euler", steps=n, cfg=5, seeds=seeds[:1], model=sd).images[0]
print("bit-identical to sdlab.generate:", torch.equal(mine, one_liner))
display.image_strip({"my loop": mine, "sdlab.generate": one_liner}, scale=3)

# %% [markdown]
# Every sampler is such a loop: read one with `sdlab.samplers.kdiffusion.heun??` or `dpmpp_2m??`. Heun
# takes a second look at the slope at the next sigma (2 model evaluations per step); DPM++ 2M reuses the
# previous step's guess instead (1 evaluation, second order); "a" samplers add fresh noise after each step.
#
# **Exercise**: turn the loop into Heun's method: after the Euler step, evaluate the slope again at
# `sigmas[i + 1]` (unless it is 0) and step with the average of the two slopes. Compare with
# `sdlab.generate(..., sampler="Heun", schedule="Uniform")`.

# %% [markdown]
# ## Step 3 · The catalogue
#
# What sdlab knows about each A1111 sampler: its order of accuracy, model evaluations (NFE) per step, whether it
# injects noise, and the schedule A1111's "Automatic" picks for it.

# %%
catalogue = pd.DataFrame(sdlab.list_samplers())
catalogue = catalogue[catalogue["a1111"].notna()]
catalogue[["a1111", "order", "nfe_per_step", "stochastic", "default_schedule", "description"]]

# %% [markdown]
# ## Step 4 · Every sampler at every step count
#
# `X.convergence` runs each sampler at each step count and measures each result against a reference (DPM++ 2M on
# the Karras schedule with many steps), same prompt and seed. The grid shows the images.

# %%
# smoke: ~20 s on a CPU; full (20 samplers x 4 step counts, 100-step reference): a few minutes on a CPU
res = X.convergence(samplers, steps=step_counts, seeds=seeds, cfg=5, reference=reference, model=sd)
grid = display.grid_from_table(res.table, res.images, rows="sampler", cols="steps")
display.save_image(grid, out / "grid.png")

# %% [markdown]
# ## Step 5 · Quality at equal cost
#
# Distance to the reference against model evaluations: lower left is cheaper and closer. Hover a point to see
# its image.

# %%
fig = charts.cost_quality_chart(res.table, images=res.images)
charts.save_figure(fig, out / "cost_quality")
charts.show_chart(fig)

# %%
fig = charts.convergence_chart(res.table, images=res.images)
charts.save_figure(fig, out / "convergence")
charts.show_chart(fig)

# %% [markdown]
# The fitted slope `b` says how fast each sampler converges (distance ~ steps^b; negative: closer with more
# steps). Ancestral and SDE samplers draw fresh noise at every step, so they are not expected to close in. Watch
# DDIM CFG++ in the full run: CFG++ reads the guidance scale differently (its paper uses scales below 1), so at
# CFG 5 it heads somewhere else entirely.

# %%
fits = res.summary[res.summary["metric"] == "latent_rmse"].dropna(subset=["b"])
noisy = fits["sampler"].isin(set(catalogue.loc[catalogue["stochastic"] == "yes", "a1111"]))  # "churn": off by default
closer = fits[~noisy & (fits["b"] < 0)]["sampler"].tolist()
astray = [f"{r.sampler} (b = {r.b:+.2f})" for r in fits[~noisy & (fits["b"] >= 0)].itertuples()]
say(
    f"In this run ({min(step_counts)} to {max(step_counts)} steps), {len(closer)} of {int((~noisy).sum())} "
    f"deterministic samplers close in on the reference as steps grow ({listing(closer)})"
    + (f"; **{listing(astray)} do{'es' if len(astray) == 1 else ''} not**. " if astray else ". ")
    + f"Stochastic samplers: {listing(f'{r.sampler} (b = {r.b:+.2f})' for r in fits[noisy].itertuples())}."
)
res.summary.round(3)

# %% [markdown]
# **Exercise**: run Step 4 with `schedule="Karras"` for every sampler. Which samplers gain the most?
#
# ## Going further
# - `02`-`07` measure convergence, schedules and divergence with many seeds; `08_ground_truth` on an exact model.
# - `sdlab.list_samplers(available_only=False)` also lists ComfyUI's samplers (`"dpmpp_2m"`, `"uni_pc_bh2"`, ...),
#   and `"diffusers:EulerDiscreteScheduler"` runs any diffusers scheduler.
# - `display.image_grid({sampler: {steps: image}})` builds your own grids from any images.
