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
# # 06 · Explore with Euler a, then converge
#
# ![The picked seed: Euler a's guess, its own final image, and DPM++ 2M's refinement](../figures/06_explore_then_refine/before_after.png)
#
# Ancestral samplers are creative: every seed and every step count is another variation. Converging samplers are
# precise: more steps, a cleaner version of the same image. This notebook uses both, the way many people work:
# explore cheaply with an ancestral sampler over many seeds, watch the live previews, pick the one you like, and
# let a converging sampler finish it from where you picked it. Not satisfied? Add more noise, or more seeds,
# and repeat.
#
# **What you will learn**
# - how to explore many seeds at once and look at the last steps of each with A1111's cheap live preview and
#   with the full decode;
# - how to pick a seed and a step in a small widget (or with the `pick` parameter);
# - the handoff behind "continue with another sampler": ComfyUI's two KSamplerAdvanced nodes, in two
#   `sdlab.generate` calls (`end_step` with `return_leftover_noise`, then `start_step` with `add_noise=False`);
# - how re-noising a few steps back gives variations of the picked image.
#
# **Prerequisites**: `00_quickstart`; `04_ancestral_divergence` explains what "ancestral" means. Smoke mode
# (4 seeds, 8 steps) runs in about a minute on a CPU.

# %% tags=["parameters"]
model = None  # None: the embedded miniature SD (64x64, CPU); or a hub id, diffusers folder or .safetensors file
smoke = True  # True: 8 steps, 4 previewed (CI); False: 24 steps, 8 previewed
seeds = [0, 1, 2, 3]
device = "cpu"
out_dir = None  # None: build/lab/06_explore_then_refine/ (not committed); make figures: figures/06_explore_then_refine
pick = None  # the seed to refine when no one clicks (papermill, CI); None: the first seed
at_step = None  # the handoff step when no one clicks; None: the first previewed step

# %%
import sdlab
import sdlab.lab.workflows as W
from sdlab.generation import load
from sdlab.lab.notebooks import output_dir, say
from sdlab.viz import charts, display

out = output_dir("06_explore_then_refine", out_dir)  # where this notebook's figures go
prompt = "a red circle above a blue square, sunset sky"
sd = load(model, device=device)
steps = 8 if smoke else 24
preview_last = 4 if smoke else 8

# %% [markdown]
# ## Step 1 · Explore: one ancestral run over many seeds
#
# `W.explore` runs Euler a once for all seeds (a batch), on the Karras schedule, and keeps every step of each:
# the latent and the model's denoised guess. Here are the final images:

# %%
# previews by all three decoders; "tiny" needs TAESD's weights for a real checkpoint (see sdlab.models.tiny_vae)
ex = W.explore(
    prompt,
    sampler="Euler a",
    seeds=seeds,
    steps=steps,
    preview_last=preview_last,
    cfg=5,
    model=sd,
    decode=W.PREVIEW_MODES,
)
finals = display.image_strip({f"seed {s}": img for s, img in zip(ex.seeds, ex.images, strict=True)}, scale=2)
display.save_image(finals, out / "seeds.png")

# %% [markdown]
# ## Step 2 · Live previews: cheap, tiny and full
#
# While A1111 samples, it shows the denoised guess of the current step. Its "Approx cheap" preview is one
# linear map from the 4 latent channels to RGB: free, but at latent resolution (1/8 of the image for SD, 1/4
# here) and with approximate colours. Its "TAESD" preview runs a tiny decoder distilled from the VAE: a few % of
# the VAE's cost, close to its image. The full preview runs the VAE decoder on the same guess. Rows: seeds;
# columns: the last steps of the run.

# %%
display.save_image(ex.grid(mode="preview"), out / "previews_cheap.png")

# %%
display.save_image(ex.grid(mode="tiny"), out / "previews_tiny.png")

# %%
display.save_image(ex.grid(mode="full"), out / "previews_full.png")

# %% [markdown]
# Even the cheap preview is enough to judge the composition, which is what exploring needs (though on this model
# a linear map cannot tell red from lavender: the tiny decoder can). In the last steps
# an ancestral sampler still moves details around: each step adds fresh noise.
#
# **Exercise**: explore 8 seeds (`seeds=list(range(8))`) at 12 steps with `preview_last=6`. How early can you
# tell which seeds you like from the cheap preview?

# %% [markdown]
# ## Step 3 · Pick a seed and a step
#
# In Jupyter, pick a seed and the step to hand off at (the grid outlines your pick), then press **Refine**:
# DPM++ 2M continues that seed from that step, and the result appears right below the buttons. Under papermill (and in CI) the widget is shown as a
# still image, and the parameters `pick` and `at_step` choose instead.

# %%
choice = {"seed": ex.seeds[0] if pick is None else pick, "step": ex.preview_steps[0] if at_step is None else at_step}


def on_pick(seed, step):
    choice.update(seed=seed, step=step)  # the cells below use your last pick
    return W.before_after(ex, W.refine(ex, seed, at_step=step))  # {title: image}: shown under the controls


W.explorer_widget(ex, on_pick)

# %% [markdown]
# ## Step 4 · Converge: the handoff
#
# `W.refine` takes the explorer's latent as it entered step k (still holding sigma_k of noise) and lets DPM++ 2M
# run the remaining steps on the same sigmas. Left to right: Euler a's denoised guess at step k, Euler a's own
# final image, and the refined one.

# %%
seed, k = choice["seed"], choice["step"]
refined = W.refine(ex, seed, at_step=k, sampler="DPM++ 2M")
display.save_image(display.image_strip(W.before_after(ex, refined), scale=2), out / "before_after.png")

# %% [markdown]
# The one-liner is two ordinary runs, ComfyUI's two KSamplerAdvanced nodes: Euler a for the first k steps,
# returning its leftover noise, then DPM++ 2M from step k on those latents without adding new noise.

# %%
common = dict(schedule=ex.schedule, steps=steps, cfg=5, seeds=[seed], model=sd)
first = sdlab.generate(prompt, sampler="Euler a", end_step=k, return_leftover_noise=True, **common)
second = sdlab.generate(prompt, sampler="DPM++ 2M", start_step=k, add_noise=False, latents=first.latents, **common)
print("largest difference to W.refine:", (second.latents - refined.latents).abs().max().item())

# %% [markdown]
# (The exploration ran all seeds in one batch, this seed alone: the network rounds a batch a little
# differently, and the steps carry that along, so the two agree to about 1e-4, not to the last bit.)
#
# Per step, how much the denoised guess still changes (latent RMSE from step i to i+1), along Euler a's own run
# and along the handoff path:

# %%
path = W.refine_table(ex, refined)
fig = charts.delta_chart(path, comparisons=("next",), title=f"Seed {seed}: Euler a alone and handed to DPM++ 2M")
charts.save_figure(fig, out / "handoff")
charts.show_chart(fig)
moves = path[(path["comparison"] == "next") & (path["metric"] == "latent_rmse") & (path["step"] >= k)]
by_run = moves.pivot_table(index="step", columns="sampler", values="value")
alone, handed = (by_run[c] for c in sorted(by_run.columns, key=lambda c: "->" in c))
ratio = float((handed / alone).median())
less = int((handed < alone).sum())
say(
    f"After the handoff at step {k}, DPM++ 2M moves the guess {ratio:.2f} times as much as Euler a does at the same "
    f"step (median over the {len(by_run)} remaining steps; less at {less} of them): "
    + ("the converging sampler settles while the ancestral one keeps moving." if ratio < 1 else
       "at this step count the converging sampler does not settle faster than Euler a.")
)

# %% [markdown]
# **Exercise**: refine the same seed with `sampler="Euler a"` instead. With no re-noise it reproduces the
# exploration's final image (up to batch rounding): the handoff itself changes nothing, the sampler does.

# %% [markdown]
# ## Step 5 · Repeat with more noise
#
# Not quite it? `renoise_steps=r` adds fresh noise to the picked latent, up to the noise level r steps earlier,
# and converges from there: the larger r, the more the image may change. `noise_seed` draws other noise.

# %%
variants = {"no re-noise": refined}
for r in (1, 2) if smoke else (2, 4, 8):
    r = min(r, k)
    variants[f"re-noise {r} step{'s' if r > 1 else ''}"] = W.refine(ex, seed, at_step=k, renoise_steps=r)
variants["re-noise 2, noise seed 1"] = W.refine(ex, seed, at_step=k, renoise_steps=min(2, k), noise_seed=1)
display.save_image(display.image_strip({t: v.images[0] for t, v in variants.items()}, scale=2), out / "variations.png")

# %% [markdown]
# **Exercise**: pick another seed in Step 3 (or set `pick`), and hand off earlier (`at_step=2`). Which keeps
# more of what you picked: an early handoff, or a late one with re-noise?
#
# ## Going further
# - `W.refine(..., sampler="DPM++ 2M SDE")` or `"Heun"`: any k-diffusion sampler on the same sigmas converges
#   the pick; samplers that drop the penultimate sigma (DPM2, DPM++ 3M SDE) are refused with a hint.
# - `W.explore(..., sampler="DPM++ SDE")`: explore with an SDE sampler instead of an ancestral one.
# - `05_cfg_predictability`: once you have your seed, find the CFG and step count where it stops jumping.
