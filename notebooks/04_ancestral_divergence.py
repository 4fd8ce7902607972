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
# # 04 · Ancestral samplers never settle
#
# ![One seed at several step counts: an ancestral sampler and its deterministic twin](../figures/04_ancestral_divergence/steps.png)
#
# "Euler a gives a great result at 25-30 steps; at 50 it is worse, at 100 better again. It is a lottery."
# Samplers with an "a" (ancestral) or "SDE" in their name throw away part of the image's noise after every step
# and put fresh noise in its place. They never converge to one image: more steps give *another* image, not a
# sharper one. Here we measure that, against each sampler's deterministic twin.
#
# **What you will learn**
# - what one ancestral step does: a deterministic step down to `sigma_down`, then fresh noise `sigma_up`;
# - how far Euler a, DPM2 a, DPM++ 2S a and the SDE samplers land from their deterministic twins as steps grow;
# - why N and N+1 steps give a converging sampler the same image, and an ancestral one a different one;
# - what the `eta` knob does: 0 is the deterministic twin, 1 is A1111's default.
#
# **Prerequisites**: `00_quickstart` and `01_samplers_tour`. Smoke mode runs one pair of samplers at two step
# counts in under a minute on a CPU; the full run (six pairs, four step counts, two seeds) takes a few minutes.

# %% tags=["parameters"]
model = None  # None: the embedded miniature SD (64x64, CPU); or a hub id, diffusers folder or .safetensors file
smoke = True  # True: one pair, three step counts (CI); False: every pair, four step counts, two seeds
seeds = [0]
device = "cpu"
out_dir = None  # None: build/lab/04_ancestral_divergence/ (not committed); make figures: figures/04_ancestral_divergence

# %%
import pandas as pd

import sdlab
import sdlab.experiments as X
from sdlab.generation import load
from sdlab.lab.notebooks import listing, output_dir, say
from sdlab.samplers.base import get_ancestral_step
from sdlab.viz import charts, display

out = output_dir("04_ancestral_divergence", out_dir)  # where this notebook's figures go
prompt = "a red circle above a blue square, sunset sky"
sd = load(model, device=device)
pairs = [("Euler a", "Euler")] if smoke else list(X.DEFAULT_PAIRS)  # (ancestral or SDE, deterministic twin)
step_counts = (5, 10, 20) if smoke else (5, 10, 20, 40)
etas = (0.0, 0.5, 1.0) if smoke else (0.0, 0.25, 0.5, 0.75, 1.0)
seeds = seeds if smoke else sorted({*seeds, 0, 1})

# %% [markdown]
# ## Step 1 · What one ancestral step does
#
# From noise level sigma_i to sigma_(i+1), Euler a first takes a deterministic Euler step down to
# `sigma_down` (below sigma_(i+1)), then adds fresh Gaussian noise of size `sigma_up`, so the total is back at
# sigma_(i+1): `sigma_down^2 + sigma_up^2 = sigma_(i+1)^2`. The fresh noise is drawn from the seed's generator,
# one draw per step: change the step count and every draw lands somewhere else.

# %%
sigmas = sdlab.get_sigmas("Karras", 6, sd)
rows = []
for s, s_next in zip(sigmas[:-1].tolist(), sigmas[1:].tolist(), strict=True):
    down, up = get_ancestral_step(s, s_next, eta=1.0)
    rows.append({"sigma_i": s, "sigma_i+1": s_next, "sigma_down": down, "sigma_up (fresh noise)": up})
pd.DataFrame(rows).round(3)

# %% [markdown]
# Early on, most of sigma_(i+1) is fresh noise: the sampler forgets much of what it had. Only the last step
# (to sigma = 0) adds nothing.
#
# **Exercise**: print the table with `eta=0.5`. How much of the noise is fresh now?

# %% [markdown]
# ## Step 2 · The same seed at more and more steps
#
# `X.ancestral_divergence` runs each pair (ancestral, twin) on one schedule at every step count and measures:
# the ancestral image against its twin's (`vs_deterministic`), each sampler at N against N+1 steps
# (`n_to_n+1`), and an `eta` sweep. Distances are latent RMSE and image metrics (SSIM, PSNR).

# %%
res = X.ancestral_divergence(pairs, steps=step_counts, eta=etas, eta_steps=step_counts[1], seeds=seeds, model=sd)
pair = f"{pairs[0][0]} vs {pairs[0][1]}"
grid = display.grid_from_table(res.table[res.table["pair"] == pair], res.images, rows="sampler", cols="steps")
display.save_image(grid, out / "steps.png")

# %% [markdown]
# Top row: the ancestral sampler; bottom row: its twin. The twin's images settle as steps grow; the
# ancestral one keeps changing. The chart says by how much (hover a point to see its image):

# %%
fig = charts.divergence_chart(res.table, images=res.images)
charts.save_figure(fig, out / "divergence")
charts.show_chart(fig)

# %% [markdown]
# Solid lines: how far the ancestral image is from its twin's. Dashed: how much each sampler still changes from
# N to N+1 steps. A converging sampler's dashed line falls steadily (each extra step changes less); an
# ancestral sampler's stays high: one more step is one more lottery ticket, not a better image.

# %%
res.table.query("metric == 'latent_rmse' and comparison != 'eta'").pivot_table(
    index=["comparison", "sampler"], columns="steps", values="value"
).round(3)

# %%
moves = res.table.query("metric == 'latent_rmse' and comparison == 'n_to_n+1'")
top = int(moves["steps"].max())
last = moves[moves["steps"] == top].groupby("sampler")["value"].median()
twins = {t for _, t in pairs}
calm = {s: v for s, v in last.items() if s in twins}
noisy = {s: v for s, v in last.items() if s not in twins}
verdict = (
    "every stochastic sampler still changes more than any deterministic twin"
    if noisy and calm and min(noisy.values()) > max(calm.values())
    else "**not every stochastic sampler changes more than the twins here**"
)
say(
    f"One more step at {top} steps (latent RMSE, median over seeds): the deterministic twins change by "
    f"{listing(f'{v:.2g} ({s})' for s, v in calm.items())}; the stochastic samplers by "
    f"{listing(f'{v:.2g} ({s})' for s, v in noisy.items())}: {verdict}."
)

# %% [markdown]
# ## Step 3 · N and N+1 steps, side by side
#
# The dashed lines, as pictures: each sampler at N and N+1 steps, same seed, at the largest N.

# %%
n = step_counts[-1]
cells = {
    name: {f"{k} steps": sdlab.generate(prompt, sampler=name, steps=k, cfg=5, seeds=seeds[:1], model=sd).images[0]
           for k in (n, n + 1)}
    for name in pairs[0]
}  # fmt: skip
display.save_image(display.image_grid(cells, scale=2), out / "n_to_n+1.png")

# %% [markdown]
# The twin's two images are the same picture; the ancestral sampler's differ in their details.
#
# **Exercise**: repeat with `n = 5`. At so few steps, even the twin still changes a lot from N to N+1: which
# of the two changes more?

# %% [markdown]
# ## Step 4 · The eta knob
#
# `eta` scales the fresh noise: `eta = 0` makes `sigma_up = 0`, and Euler a *is* Euler; `eta = 1` is A1111's
# default. In between the ancestral sampler drifts away from its twin gradually. (The chart's log axis cannot
# draw eta = 0: there the distance is exactly 0.)

# %%
fig = charts.divergence_chart(res.table, x="eta")
charts.save_figure(fig, out / "eta_chart")
charts.show_chart(fig)

# %%
stochastic, twin = pairs[0]
k = step_counts[1]
by_eta = {f"eta {e:g}": sdlab.generate(prompt, sampler=stochastic, steps=k, cfg=5, eta=e, seeds=seeds[:1], model=sd)
          for e in etas}  # fmt: skip
by_eta[twin] = sdlab.generate(prompt, sampler=twin, steps=k, cfg=5, seeds=seeds[:1], model=sd)
display.save_image(display.image_strip({t: r.images[0] for t, r in by_eta.items()}, scale=2), out / "eta.png")

# %% [markdown]
# At `eta = 0` the ancestral image is its twin's, bit for bit:

# %%
print("eta 0 == twin:", bool((by_eta["eta 0"].latents == by_eta[twin].latents).all()))

# %% [markdown]
# **Exercise**: A1111 exposes eta for ancestral samplers as "Eta for ancestral samplers" in its settings
# (`eta_ancestral`). Generate Euler a at 20 steps with `eta=0.3` (`sdlab.generate(..., eta=0.3)`): is it closer
# to Euler or to Euler a?
#
# ## Step 5 · SDE samplers
#
# DPM++ SDE, DPM++ 2M SDE and 3M SDE inject noise too, drawn from a Brownian tree: one noise path per seed,
# read at the noise levels of the schedule. The full run (`smoke=False`) adds their pairs to the chart above,
# and the sentence under the table in Step 2 then reports how much they still change from N to N+1 steps.
#
# **Exercise**: `X.ancestral_divergence([("DPM++ 2M SDE", "DPM++ 2M")], steps=(10, 20, 40), eta=(0, 0.5, 1))`:
# does lowering eta make the SDE sampler settle?
#
# ## Going further
# - `05_cfg_predictability`: where a CFG or step sweep makes the image jump.
# - `06_explore_then_refine`: put the lottery to work: explore seeds with Euler a, then finish the one you like
#   with a converging sampler.
# - `X.ancestral_divergence(..., schedule="Karras")` runs every pair on one schedule of your choice.
