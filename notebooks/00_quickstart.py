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
# # 00 · Quickstart: your first image, your first chart
#
# ![Three seeds, one prompt](../figures/00_quickstart/seeds.png)
#
# sdlab runs every AUTOMATIC1111 and ComfyUI sampler, by its own name, on any Stable Diffusion checkpoint and on
# a miniature SD built in: a 64x64-pixel model of simple scenes ("a red circle above a blue square, sunset sky")
# that runs on any CPU. Everything in this notebook works the same with a real checkpoint (`model=`).
#
# **What you will learn**
# - how to make images with one call, `sdlab.generate`, and show them with `sdlab.viz.display`;
# - that a noise schedule is just a tensor of noise levels, and how to plot one;
# - how to look inside a run: the model's denoised guess at every step, and how much it still changes;
# - how to save a chart (interactive HTML + PNG) next to the images it describes.
#
# **Prerequisites**: Python and a first idea of diffusion (noise in, image out, in steps).
# Open the lab with `make lab` (it installs everything into `.venv` and starts JupyterLab at these notebooks),
# or `pip install -e ".[notebooks]"` and `jupyter lab`. What the notebooks write goes to `build/lab/` (not
# committed). Smoke mode (the default) runs in well under a minute on a CPU.

# %% tags=["parameters"]
model = None  # None: the embedded miniature SD (64x64, CPU); or a hub id, diffusers folder or .safetensors file
smoke = True  # True: few steps, fast (CI); False: the full figures
seeds = [0, 1, 2]
device = "cpu"
out_dir = None  # None: build/lab/00_quickstart/ (not committed); make figures: figures/00_quickstart

# %%
import sdlab
from sdlab.generation import load
from sdlab.lab.notebooks import output_dir
from sdlab.viz import charts, display

out = output_dir("00_quickstart", out_dir)  # where this notebook's figures go
prompt = "a red circle above a blue square, sunset sky"  # a caption the embedded model was trained on
steps = 8 if smoke else 20
sd = load(model, device=device)  # loaded once and cached; every call below reuses it

# %% [markdown]
# ## Step 1 · Your first images
#
# One call: a prompt, a sampler by its A1111 name, a step count, the CFG scale and one seed per image. The
# result holds the images as a tensor `(batch, 3, H, W)` with values in [0, 1], and the full settings of each.

# %%
result = sdlab.generate(prompt, sampler="DPM++ 2M Karras", steps=steps, cfg=5, seeds=seeds, model=sd)
print(tuple(result.images.shape), f"in {result.seconds:.1f} s, {result.nfe} model evaluations")
strip = display.image_strip({f"seed {s}": img for s, img in zip(seeds, result.images, strict=True)}, scale=3)
display.save_image(strip, out / "seeds.png")

# %% [markdown]
# Every image carries the settings that made it, written the way A1111 writes them under an image:

# %%
print(sdlab.format_infotext(result.specs[0].to_a1111()))

# %% [markdown]
# **Exercise**: change the prompt. The model knows skies (day, sunset, night, dawn), grounds (grass, sand, snow,
# water), shapes (circle, square, triangle, star, house, tree) and eight colours: try
# `"a yellow star above a green tree, night sky with stars, on snow"`. Then change one seed: which images change?

# %% [markdown]
# ## Step 2 · A schedule is a tensor
#
# A sampler walks from pure noise (a large sigma) down to sigma = 0. The schedule says which noise levels it
# stops at. It is data: a 1-D tensor you can print and plot.

# %%
schedules = {name: sdlab.get_sigmas(name, steps, sd) for name in ("Karras", "Exponential", "Uniform")}
print(schedules["Karras"])
fig = charts.schedule_chart(schedules)
charts.save_figure(fig, out / "schedules")
charts.show_chart(fig)

# %% [markdown]
# Exponential is a straight line on this log axis (even steps in log sigma); Karras bends to spend more of its
# steps at low noise, where the fine detail is decided; Uniform (even steps in the model's training time) crowds
# the middle and leaves one big last step down to the smallest sigma.
#
# **Exercise**: `sdlab.list_schedules()` names every A1111 and ComfyUI schedule. Add "Align Your Steps" and
# "Beta" to the chart.

# %% [markdown]
# ## Step 3 · Inside one run
#
# With `trajectory=True` each image keeps its path: per step the noise level, the latent and the model's
# denoised guess of the final image. Decoding the guesses shows the picture forming.

# %%
run = sdlab.generate(prompt, sampler="DPM++ 2M Karras", steps=steps, cfg=5, seeds=seeds[:1], model=sd, trajectory=True)
trajectory = run.trajectories[0]
previews = trajectory.decode(sd)  # (steps, 3, 64, 64) in [0, 1]: the denoised guess after each step
titles = [f"step {i}, sigma {s:.2f}" for i, s in enumerate(trajectory.column("sigma"))]
display.save_image(display.image_strip(previews, titles=titles, scale=2), out / "trajectory.png")
display.show_images(previews, titles=titles)

# %% [markdown]
# ## Step 4 · How much does each step still change?
#
# `charts.trajectory_table` measures, per step, how far the denoised guess moves to the next step (solid) and
# how far it still is from the final result (dashed), in latent RMSE. Move the slider to see the guess at that
# step; in Jupyter the chart is a live widget.

# %%
deltas = charts.trajectory_table(run)
fig = charts.delta_chart(deltas, images=previews)
charts.save_figure(fig, out / "deltas")
charts.show_chart(fig)

# %% [markdown]
# The changes shrink as sigma falls: the composition is fixed in the first steps, the detail in the last.
#
# **Exercise**: rerun Steps 3 and 4 with `sampler="Euler a"`. An ancestral sampler adds fresh noise at every
# step: does its curve still fall as fast?
#
# **Exercise**: `trajectory.decode(sd, mode="preview")` is A1111's cheap live preview (a linear map of the
# latent, no VAE). Show it beside the full decode with `display.image_strip`.

# %% [markdown]
# ## Going further
# - `01_samplers_tour`: every A1111 sampler, the Euler loop written out, a sampler x steps grid.
# - `03_stability`: does the same seed give the same image (reruns, batch size, RNG source, dtype)?
# - `08_ground_truth`: samplers' true errors on a model whose exact answer is known.
# - `display.image_grid`, `sdlab.viz.to_pil` and `display.show_images` take tensors in [0, 1] or [-1, 1]
#   (`value_range=(-1, 1)`), numpy arrays, PIL images, lists and `{title: image}` dicts.
