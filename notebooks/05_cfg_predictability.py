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
# # 05 · Where does the image jump? CFG and step sweeps
#
# ![One seed along a CFG sweep, the largest jump outlined](../figures/05_cfg_predictability/cfg_strip.png)
#
# You found a good image at CFG 7 and 20 steps. Will CFG 7.5 or 22 steps give the same picture, a little
# better, or something else entirely? A sweep answers it: run neighbouring settings and measure how far each
# image moves from the one before. Where the curve spikes, the image jumps.
#
# **What you will learn**
# - how to sweep CFG and step counts in one call and compare neighbouring settings;
# - how to find the largest jump of a sweep, and see it in an image strip;
# - why a converging sampler's step sweep gets smooth while an ancestral sampler's never does;
# - how to read a jump chart (hover a point to see the image after the jump).
#
# **Prerequisites**: `00_quickstart`; `04_ancestral_divergence` helps for Step 3. Smoke mode runs seven CFG
# scales and five step counts in under a minute on a CPU; the full run (about ten of each, two seeds) takes minutes.

# %% tags=["parameters"]
model = None  # None: the embedded miniature SD (64x64, CPU); or a hub id, diffusers folder or .safetensors file
smoke = True  # True: 7 CFG scales, 5 step counts (CI); False: CFG 1-12, 10-30 steps, two seeds
seeds = [0]
device = "cpu"
out_dir = None  # None: build/lab/05_cfg_predictability/ (not committed); make figures: figures/05_cfg_predictability

# %%
import sdlab.experiments as X
import sdlab.lab.workflows as W
from sdlab.generation import load
from sdlab.lab.notebooks import output_dir, say
from sdlab.viz import charts, display

out = output_dir("05_cfg_predictability", out_dir)  # where this notebook's figures go
prompt = "a red circle above a blue square, sunset sky"
sd = load(model, device=device)
cfgs = (2, 3, 4, 5, 6, 7, 8) if smoke else tuple(range(1, 13))  # evenly spaced: see Step 1
step_counts = (8, 10, 12, 14, 16) if smoke else tuple(range(10, 32, 2))
at_steps = 12 if smoke else 20  # the step count of the CFG sweep (and the CFG of the step sweep is 5)
seeds = seeds if smoke else sorted({*seeds, 0, 1})

# %% [markdown]
# ## Step 1 · A CFG sweep
#
# `X.predictability` runs the sampler at every CFG scale (at `at_steps` steps) and at every step count (at CFG
# 5), then compares each image with the next setting's: latent RMSE, SSIM and PSNR. `W.sweep_strip` lays out
# one seed's images in order, titled with their change from the previous one, and outlines the largest jump.

# %%
res = X.predictability("DPM++ 2M", cfgs=cfgs, steps=step_counts, at_steps=at_steps, seeds=seeds, model=sd)
strip = W.sweep_strip(res, "cfg")
display.save_image(strip, out / "cfg_strip.png")

# %%
fig = W.jump_chart(res, "cfg")
charts.save_figure(fig, out / "cfg_jumps")
charts.show_chart(fig)

# %%
jumps = W.sweep_jumps(res, "cfg")
low, high = jumps.loc[jumps["value"].idxmin()], jumps.loc[jumps["value"].idxmax()]
say(
    f"From one CFG scale to the next, this run's first seed moves by {low.value:.2g} to {high.value:.2g} latent "
    f"RMSE: least from CFG {low.setting_from:g} to {low.setting_to:g}, most from CFG {high.setting_from:g} to "
    f"{high.setting_to:g} ({high.value / low.value:.1f} times as much)."
)

# %% [markdown]
# Read the strip and the chart together: at low CFG the prompt has little grip on the picture; at high CFG the
# shapes start to deform (watch the circle's outline). Space the settings evenly: a jump across a wider gap looks
# larger just because the gap is wider.
#
# **Exercise**: sweep `cfgs=(5, 5.5, 6, 6.5, 7)`. Is a half step of CFG a small change everywhere?

# %% [markdown]
# ## Step 2 · A step sweep
#
# The same for the step count, at CFG 5. For a converging sampler (DPM++ 2M) the changes are small and shrink as
# steps grow (the largest jump is the first one, from 8 to 10 steps): the image is converging.

# %%
display.save_image(W.sweep_strip(res, "steps"), out / "steps_strip.png")

# %% [markdown]
# ## Step 3 · An ancestral sampler's step sweep
#
# Euler a adds fresh noise at every step (`04_ancestral_divergence`), so every step count is another image: its
# step sweep keeps jumping. Both samplers in one chart:

# %%
ancestral = X.predictability("Euler a", cfgs=(5,), steps=step_counts, seeds=seeds, model=sd)
display.save_image(W.sweep_strip(ancestral, "steps"), out / "steps_strip_euler_a.png")

# %%
fig = W.jump_chart({"DPM++ 2M": res, "Euler a": ancestral}, "steps")
charts.save_figure(fig, out / "steps_jumps")
charts.show_chart(fig)

# %% [markdown]
# Euler a's line stays several times higher than DPM++ 2M's: with an ancestral sampler, two more steps are
# another draw of the lottery, not a refinement. `summary` holds each sweep's largest jump (mean over seeds) and
# the median jump, per metric:

# %%
res.summary.round(3)

# %% [markdown]
# **Exercise**: the largest jumps of `W.sweep_jumps(res, "steps", metric="ssim")`: do SSIM and latent RMSE
# agree on where the image jumps?
#
# ## Going further
# - `06_explore_then_refine`: use the ancestral lottery on purpose, then converge the image you picked.
# - `X.predictability(..., schedule="Karras")`: does the schedule smooth the step sweep?
# - With a real checkpoint (`model=`), sweep CFG 1-15 at 30 steps: the jumps show where the prompt takes hold.
