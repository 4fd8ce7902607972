# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Convergence: how many steps does a sampler need?
#
# ![Distance to the reference against steps](../figures/02_convergence/convergence.png)
#
# "Converges" is the word every sampler guide uses: more steps stop changing the image. Here we measure it. Each
# sampler runs at several step counts; each result is compared with a reference (a deterministic sampler at many
# steps, same prompt and seed), and within each run every step's denoised guess is compared with the next one.
#
# **What you will learn**
# - how to measure convergence: distance to a reference, and per-step change within one run (latent RMSE, SSIM,
#   and LPIPS where its network is available);
# - how many steps each sampler needs to converge, by a stated threshold;
# - how to fit an exponent to "distance ~ steps^b" and how ours compare with published Stable Diffusion numbers;
# - how to read a per-step change chart with its step slider.
#
# **Prerequisites**: `00_quickstart` (trajectories, per-step deltas) and `01_samplers_tour`. Smoke mode runs 4
# samplers at 3 step counts on 32-pixel images in under a minute on a CPU; the full run (7 samplers, 5 step
# counts up to 80, 64 pixels) takes a few minutes.

# %% tags=["parameters"]
model = None  # None: the embedded miniature SD (64x64, CPU); or a hub id, diffusers folder or .safetensors file
smoke = True  # True: 4 samplers x 3 step counts, 32 px (CI); False: 7 samplers x 5 step counts
seeds = [0, 1]
device = "cpu"
out_dir = None  # None: build/lab/02_convergence/ (not committed); make figures: figures/02_convergence

# %%
import pandas as pd
import torch

import sdlab
import sdlab.experiments as X
from sdlab.generation import load
from sdlab.lab.notebooks import listing, output_dir, say
from sdlab.viz import charts, display

torch.set_num_threads(1)  # small tensors: one thread avoids synchronisation overhead on a shared CPU
out = output_dir("02_convergence", out_dir)  # where this notebook's figures go
prompt = "a red circle above a blue square, sunset sky"
sd = load(model, device=device)
size = (32, 32) if smoke and model is None else None  # None: the model's own size
samplers = ["Euler", "Heun", "DPM2", "LMS"] + ([] if smoke else ["DPM++ 2M", "UniPC", "Euler a"])
step_counts = (4, 8, 16) if smoke else (5, 10, 20, 40, 80)
reference = {"sampler": "DPM++ 2M", "schedule": "Karras", "steps": 32 if smoke else 100}

# %% [markdown]
# ## Step 1 · Every sampler at every step count, against a reference
#
# `X.convergence` runs each sampler at each step count, measures the final image against the reference
# (latent RMSE, SSIM, PSNR, LPIPS) and records, per step, how far the denoised guess still moves
# (`step_image_metrics`). LPIPS needs its ImageNet network in the torch cache; nothing here downloads, so where it
# is missing the experiment goes on without it and says so in `notes`.

# %%
res = X.convergence(
    samplers, steps=step_counts, seeds=seeds, cfg=5, reference=reference, size=size, model=sd,
    step_image_metrics=("ssim", "lpips"),
)  # fmt: skip
for note in res.notes:
    print("note:", note)

# %% [markdown]
# ## Step 2 · Distance to the reference, beside the images
#
# One line per sampler (median over seeds, the band from min to max). Hover a point to see its image; the grid
# below shows every sampler at every step count for the first seed.

# %%
fig = charts.convergence_chart(res.table, images=res.images)
charts.save_figure(fig, out / "convergence")
charts.show_chart(fig)
grid = display.grid_from_table(res.table, res.images, rows="sampler", cols="steps", scale=3 if smoke else 2)
display.save_image(grid, out / "grid.png")

# %% [markdown]
# The same distances against model evaluations (Heun and DPM2 cost two per step):

# %%
fig = charts.convergence_chart(res.table, x="nfe", images=res.images, title="Distance to the reference against NFE")
charts.save_figure(fig, out / "convergence_nfe")
charts.show_chart(fig)

# %% [markdown]
# ## Step 3 · Steps to converge
#
# The first step count from which every seed stays within a threshold of the reference (`X.DEFAULT_THRESHOLD`:
# latent RMSE 0.05, SSIM 0.98, PSNR 35 dB). NaN: not converged at the most steps measured.

# %%
print(X.DEFAULT_THRESHOLD)
conv = X.steps_to_converge(res.table)
conv.pivot_table(index="sampler", columns="metric", values="steps_to_converge", dropna=False)

# %% [markdown]
# ## Step 4 · Fitted exponents against the published numbers
#
# `X.fit_power_law` fits distance ~ a * steps^b per sampler (one intercept per seed, a 95 % interval on b).
# J. Gaessler's stable-diffusion-insights fitted the same law on SD 1.x (mean red pixel value against a
# 1000-step reference of the same sampler): Euler -0.82, Heun -1.19, DPM2 -1.64, LMS -1.33. The metric, model and
# reference differ, so compare the order of the samplers and the rough size, not the digits.

# %%
published = pd.DataFrame({"sampler": ["Euler", "Heun", "DPM2", "LMS"], "published_b": [-0.818, -1.189, -1.635, -1.325]})
fits = X.fit_power_law(res.table, metric="latent_rmse")
fits = fits.merge(published, on="sampler", how="left")
fits[["sampler", "schedule_resolved", "b", "b_low", "b_high", "r2", "published_b", "steps_min", "steps_max"]].round(3)

# %% [markdown]
# A steeper (more negative) b converges faster per step; a positive b means the images move *away* from the
# reference as steps grow, within the step counts measured. What this run's fits say:

# %%
ok = fits.dropna(subset=["b"])
closer, away = ok[ok["b"] < 0], ok[ok["b"] >= 0]
text = f"Over {min(step_counts)} to {max(step_counts)} steps ({'smoke' if smoke else 'full'} run): "
if not closer.empty:
    best = closer.loc[closer["b"].idxmin()]
    text += (
        f"{listing(closer['sampler'])} get closer to the reference as steps grow (b from {closer['b'].max():.2f}"
        f" to {closer['b'].min():.2f}; steepest: {best['sampler']}). "
    )
if away.empty:
    text += "Every deterministic sampler measured here converges."
else:
    worse = [f"{r.sampler} (b = {r.b:+.2f})" for r in away.itertuples()]
    text += (
        f"**{listing(worse)} {'gets' if len(worse) == 1 else 'get'} worse with more steps** here: at these step "
        "counts not every deterministic sampler converges yet (try more steps, `smoke=False`)."
    )
say(text)

# %% [markdown]
# At few steps and against a reference that is itself a few dozen steps, the fits flatten: the reference's own
# error sets a floor. The ground truth (`08_ground_truth`) measures the true orders without either problem.
#
# **Exercise**: refit with `fit_power_law(res.table, metric="latent_rmse")` on the rows with `steps >= 8` only.
# Do the exponents move towards the published ones?

# %% [markdown]
# ## Step 5 · Per-step change within a run
#
# Inside each run, the denoised guess at step i against step i + 1 (`next`) and against the final result
# (`final`). SSIM per step for the largest step count (1 = no visible change):

# %%
top = res.table[(res.table["steps"] == max(step_counts)) & (res.table["step"] >= 0)]
ssim = top[(top["metric"] == "ssim") & (top["comparison"] == "next")]
ssim.pivot_table(index="step", columns="sampler", values="value").round(4)

# %% [markdown]
# The same for one run, with a step slider: move it to see the denoised guess at that step and where the curves
# are. In Jupyter the chart is a live widget; exported, it keeps the slider.

# %%
run = sdlab.generate(
    prompt, sampler="Heun", steps=max(step_counts), cfg=5, seeds=seeds[:1], size=size, model=sd, trajectory=True
)
previews = run.trajectories[0].decode(sd)  # (steps, 3, H, W) in [0, 1]
deltas = charts.trajectory_table(run, model=sd, image_metrics=("ssim",), decode="full")
last = (deltas["comparison"] == "final") & (deltas["step"] == deltas["step"].max())  # the result vs itself: ~0
fig = charts.delta_chart(deltas[~last], images=previews)
charts.save_figure(fig, out / "deltas")
charts.show_chart(fig)

# %%
moves = deltas[(deltas["comparison"] == "next") & (deltas["metric"] == "latent_rmse")].sort_values("step")
first, final, n = float(moves["value"].iloc[0]), float(moves["value"].iloc[-1]), max(step_counts)
calm = moves["value"].to_numpy() < 0.1 * first  # steps that move the guess less than a tenth of the first step
settled = next((int(s) for k, s in enumerate(moves["step"]) if calm[k:].all()), None)
if settled is None:
    say(
        f"Heun's guess has not settled in these {n} steps: its last step still moves it by {final:.3g} latent RMSE, "
        f"{final / first:.0%} of its first step's change ({first:.3g}). Try more steps (`smoke=False`)."
    )
else:
    sigma = float(moves.loc[moves["step"] == settled, "sigma"].iloc[0])
    say(
        f"From step {settled} of {n} on (sigma {sigma:.2g}), each of Heun's steps moves the guess by less than a "
        f"tenth of what its first step did ({first:.3g} latent RMSE): the composition is fixed early, the "
        "remaining steps refine detail."
    )

# %% [markdown]
# **Exercise**: draw `charts.delta_chart(deltas, metric="ssim")` and compare it with the latent RMSE chart.
# Which metric sees the late steps' changes better?
#
# ## Going further
# - `07_folklore_tested` turns these measurements into verdicts on popular claims ("Heun and DPM2 converge in
#   fewer steps but cost twice as much", "LMS degrades around 60 steps").
# - `X.convergence(..., reference={"sampler": "Heun", "steps": 200})`: with a reference of the same sampler the
#   fit follows Gaessler's set-up (`fit_power_law(..., method="gaessler")`).
# - `08_ground_truth` measures each sampler's true error on an exact model.
