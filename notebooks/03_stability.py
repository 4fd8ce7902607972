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
# # 03 · Same seed, same image?
#
# ![One seed under every variant](../figures/03_stability/variants.png)
#
# "I used the same seed and got a different image" is one of the most common complaints about Stable Diffusion
# UIs. Sometimes the seed really is all there is; sometimes the batch size, the noise generator or the
# precision changes the result. Here we measure each of them on one spec.
#
# **What you will learn**
# - that a rerun of the same spec is bit-identical, and how to check it;
# - why sdlab (like A1111) gives every image its own generator, so batch size and position do not change it;
# - what A1111's noise sources "GPU", "CPU" and "NV" are, and which of them agree;
# - how much a lower precision (bfloat16) moves the image, and how a tiny change of the noise grows.
#
# **Prerequisites**: `00_quickstart`. Smoke mode runs in well under a minute on a CPU.

# %% tags=["parameters"]
model = None  # None: the embedded miniature SD (64x64, CPU); or a hub id, diffusers folder or .safetensors file
smoke = True  # True: few steps, one rerun (CI); False: the full figures
seeds = [0]
device = "cpu"
out_dir = None  # None: build/lab/03_stability/ (not committed); make figures: figures/03_stability

# %%
import torch

import sdlab
import sdlab.experiments as X
from sdlab.generation import load
from sdlab.lab.notebooks import output_dir
from sdlab.viz import charts, display

out = output_dir("03_stability", out_dir)  # where this notebook's figures go
prompt = "a red circle above a blue square, sunset sky"
sd = load(model, device=device)
sampler, steps = "DPM++ 2M", (4 if smoke else 20)
seed = seeds[0]

# %% [markdown]
# ## Step 1 · Run it twice
#
# The same spec twice, in one process: are the two images equal to the last bit?

# %%
a = sdlab.generate(prompt, sampler=sampler, steps=steps, cfg=5, seeds=[seed], model=sd)
b = sdlab.generate(prompt, sampler=sampler, steps=steps, cfg=5, seeds=[seed], model=sd)
print(
    "bit-identical:",
    torch.equal(a.images, b.images),
    "| largest pixel difference:",
    (a.images - b.images).abs().max().item(),
)

# %% [markdown]
# ## Step 2 · Every variant at once
#
# `X.stability` reruns the spec, puts the seed first and last in a batch beside other seeds, switches the noise
# source and the weights' dtype, and nudges the initial noise by 0.1 %. Each result is compared with the base run:
# `identical` (1 = bit-identical), `max_abs` (largest pixel difference, [0, 1] units) and distances. The model is
# passed by name (`model`), so another dtype loads its own weights.

# %%
# smoke: ~15 s on a CPU; full (20 steps, 3 reruns, batches up to 8): about a minute
res = X.stability(
    prompt,
    sampler=sampler,
    steps=steps,
    seed=seed,
    reruns=1 if smoke else 3,
    batch_sizes=(1, 2) if smoke else (1, 2, 4, 8),
    rng_sources=("GPU", "CPU", "NV"),
    dtypes=("float32", "bfloat16"),
    model=model,
)
res.table.pivot_table(index=["comparison", "variant"], columns="metric", values="value", sort=False).round(5)

# %%
variants = display.images_from_table(res.table, res.images, label="variant")  # {variant: image}
display.save_image(display.image_strip({"base": a.images[0], **variants}, scale=2), out / "variants.png")

# %%
fig = charts.stability_chart(res.table, images=res.images)
charts.save_figure(fig, out / "stability")
charts.show_chart(fig)

# %% [markdown]
# ## Step 3 · Batch size and position
#
# A batched UNet call does the same arithmetic in a different order, so the seed's image in a batch of 2 can
# differ from the one made alone in the last bits (`max_abs` around 1e-5 on a CPU), not in anything you see. What would
# change the picture is shared noise: sdlab, like A1111, draws each image's noise from its own generator, seeded
# with its own seed, so the first and the last position give the same image.
#
# **Exercise**: `sdlab.generate(prompt, seeds=[seed, seed + 1], batch_size=2)` vs `seeds=[seed]`: compare the
# first images with `torch.equal` and with `(x - y).abs().max()`.
#
# ## Step 4 · The noise source
#
# A1111's "Random number generator source" setting: "GPU" draws the initial noise on the model's device, "CPU"
# on the CPU, "NV" emulates NVIDIA's Philox generator on the CPU so GPU seeds reproduce anywhere. On a CPU-only
# machine "GPU" *is* the CPU, so those two agree; "NV" is a different random stream: a different image.

# %%
display.image_strip(
    {"rng=GPU (base)": a.images[0], "rng=CPU": variants["rng=CPU"], "rng=NV": variants["rng=NV"]}, scale=3
)

# %% [markdown]
# ## Step 5 · Precision and sensitivity
#
# bfloat16 keeps about 3 significant digits: its rounding errors are far larger than a batch's, and they grow
# along the trajectory. The `perturbation` row shows the same growth from a deliberate change of 0.1 % of the noise.
#
# **Exercise**: rerun Step 2 with `sampler="Euler a"` and `perturbation=1e-2`. Does an ancestral sampler
# forget the perturbation or amplify it?
#
# ## Going further
# - `X.ancestral_divergence` and `charts.divergence_chart`: how far ancestral and SDE samplers land from their
#   deterministic twins, and whether they settle as steps grow.
# - With a GPU, pass `device="cuda"` and a real checkpoint as `model`: `dtypes=("float32", "float16")` then
#   shows the half-precision drift A1111 users see.
