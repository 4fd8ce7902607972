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
# # 07 · Sampler folklore, tested
#
# ![Every claim with its computed verdict](../figures/07_folklore_tested/verdicts.png)
#
# Guides to Stable Diffusion samplers repeat a handful of claims: "all regular samplers converge to the same
# image", "LMS is best at 8 steps or fewer", "ancestral samplers never converge", "DPM2 a looks like Euler a on
# the previous seed"... Here we take every claim two popular articles make about samplers (one Russian, one
# Spanish) and put each to a small experiment. The verdict is **computed** from the evidence with thresholds
# written in `sdlab.folklore`; nobody types it in.
#
# **What you will learn**
# - how to turn a claim into a measurement: what "the same image", "converges" and "twice the cost" mean in
#   numbers;
# - which claims stand on the ground truth (an exact model whose true ODE solution and true distribution are
#   known) and which on images of a real network (the embedded model);
# - which pieces of folklore hold, which are wrong, and which are half true;
# - how to change a threshold and see a verdict move.
#
# **Prerequisites**: `02_convergence` (distance to a reference, steps to converge), `03_stability` (same seed,
# same image) and `08_ground_truth` (true errors, MMD). Smoke mode runs all the claims in about a minute on a CPU
# (32-pixel images, 2 seeds, small ground-truth sets); the full run (64 pixels, more steps) takes about ten
# minutes.

# %% tags=["parameters"]
model = None  # None: the embedded miniature SD (64x64, CPU); or a hub id, diffusers folder or .safetensors file
smoke = True  # True: small experiments (CI, about a minute); False: the full figures (about ten minutes)
seeds = None  # None: seeds 0-1 in smoke mode, 0-5 in full; at least 2 (images are compared with seed-to-seed distances)
device = "cpu"
out_dir = None  # None: build/lab/07_folklore_tested/ (not committed); make figures: figures/07_folklore_tested

# %%
import pandas as pd
import torch
from IPython.display import Image, display

import sdlab.folklore as F
from sdlab.lab.notebooks import output_dir

torch.set_num_threads(1)  # small tensors: one thread avoids synchronisation overhead on a shared CPU
pd.set_option("display.max_colwidth", 200)
out = output_dir("07_folklore_tested", out_dir)  # where this notebook's figures go
lab = F.Lab(smoke=smoke, model=model, seeds=seeds, device=device)  # shared runs: each is made once
print(f"{len(F.CLAIMS)} claims; images {lab.size or 'at the model size'}, seeds {lab.seeds}")

# %% [markdown]
# ## Step 1 · What a tested claim looks like
#
# A claim is its quote, its article, an experiment and a judge. The judge is a plain function from the
# evidence table to a verdict, with its thresholds as keyword arguments; read one with `F.judge_lms_degrades??`.
# The shared thresholds:

# %%
claim = F.CLAIMS["lms_degrades_at_60"]
print(claim.text, "|", claim.source_title)
print("original:", claim.original)
print("how:", claim.method)
{name: getattr(F, name) for name in ("SAME", "DIFFERENT", "TOL", "BETTER", "DEGRADE", "TWICE", "SETTLES")}

# %% [markdown]
# "The same image" means a latent distance below `SAME` (20 %) of the distance between two seeds' images; "a
# different image" above `DIFFERENT` (50 %). On the ground truth a sampler "has converged" when its error
# against the true solution is below `TOL` (2 % of the data's spread). Each check below runs one claim, shows the
# verdict beside its chart and images, and saves the chart, images and table to `out_dir`.
#
# ## Step 2 · Do samplers converge, and to what?
#
# > "All the regular samplers converge to the same image after a lot of steps." (ru)
#
# Every deterministic sampler at the most steps, against every other, beside the seed-to-seed distance.

# %%
ev = F.check("converge_same_image", lab, out_dir=out)

# %% [markdown]
# > "Non-ancestral samplers are easier to reason about: generally, more steps == more good." (ru)
#
# On the ground truth: does any deterministic sampler's true error ever rise with more steps?

# %%
ev = F.check("more_steps_better", lab, out_dir=out)

# %% [markdown]
# > "Heun is a second-order improvement of Euler; the 2 in DPM2 / DPM++ 2M means second order." (es)

# %%
ev = F.check("stated_orders", lab, out_dir=out)

# %% [markdown]
# > "Euler and Heun make a nice pair: Euler to iterate fast until you like the image, then Heun for detail." (ru)

# %%
ev = F.check("euler_previews_heun", lab, out_dir=out)

# %% [markdown]
# ## Step 3 · Steps against cost
#
# > "Heun and DPM2 converge in fewer steps, but are slower." (ru)
#
# Steps and model evaluations (NFE) each sampler needs to reach the true solution within `TOL`.

# %%
ev = F.check("heun_dpm2_fewer_steps_twice_cost", lab, out_dir=out)

# %% [markdown]
# > "At 20-40+ steps Heun and DPM2 are twice as slow but converge twice as fast as LMS." (ru)

# %%
ev = F.check("heun_dpm2_twice_as_fast_as_lms", lab, out_dir=out)

# %% [markdown]
# > "The M in DPM++ 2M (multistep) means several calculations per step: more precise but slower than 2S." (es)

# %%
ev = F.check("dpmpp_2m_multistep_slower", lab, out_dir=out)

# %% [markdown]
# > "LMS uses the previous steps to be more precise, at the cost of more computation." (es)

# %%
ev = F.check("lms_precise_but_slower", lab, out_dir=out)

# %% [markdown]
# > "SDE samplers give higher quality at the cost of being slower." (es)

# %%
ev = F.check("sde_slower", lab, out_dir=out)

# %% [markdown]
# > "DPM adaptive ignores the step count" and "is the slowest, three to four times the others." (es)

# %%
ev = F.check("dpm_adaptive_ignores_steps", lab, out_dir=out)

# %%
ev = F.check("dpm_adaptive_slowest", lab, out_dir=out)

# %% [markdown]
# **Exercise**: model evaluations are what a sampler costs on a GPU. Time the samplers on this machine with
# `sdlab.experiments.cost(["Euler", "LMS", "DPM++ SDE"])`: where does wall time disagree with NFE, and why?

# %% [markdown]
# ## Step 4 · Few steps, many steps
#
# > "At very few steps (8 or fewer) LMS is best; Heun and DPM2 are not recommended." (ru)

# %%
ev = F.check("lms_best_at_8_steps", lab, out_dir=out)

# %% [markdown]
# The Spanish article says the opposite about LMS:
#
# > "LMS is not worth it: it needs around 100 steps to give something decent." (es)

# %%
ev = F.check("lms_needs_100_steps", lab, out_dir=out)

# %% [markdown]
# > "LMS starts to degrade at around 60 steps." (ru)

# %%
ev = F.check("lms_degrades_at_60", lab, out_dir=out)

# %% [markdown]
# > "(P)LMS suffer from ugly artifacts at low steps; PLMS cannot clean the noise in few steps." (ru, es)
# >
# > "DDIM needs many steps (100+) for a good result; better alternatives exist." (ru, es)

# %%
ev = F.check("plms_bad_at_few_steps", lab, out_dir=out)

# %%
ev = F.check("ddim_needs_many_steps", lab, out_dir=out)

# %% [markdown]
# > "UniPC gives the best results at very low step counts." (es)
# >
# > "DPM++ 2M Karras gives very good results at 20-30 steps." (es)

# %%
ev = F.check("unipc_best_at_few_steps", lab, out_dir=out)

# %%
ev = F.check("dpmpp_2m_karras_good_at_20_30", lab, out_dir=out)

# %% [markdown]
# > "Karras schedules give better results at low step counts; at high step counts the difference is hard to
# > see." (es)

# %%
ev = F.check("karras_helps_low_steps", lab, out_dir=out)

# %% [markdown]
# Every step-count claim depends on the tolerance. Move the slider: the judge reads the same evidence with another
# `tol` (nothing is re-run), and the verdict follows.

# %%
F.rejudge("lms_needs_100_steps", lab.evidence["lms_needs_100_steps"], "tol", [0.005, 0.01, 0.02, 0.05, 0.1])

# %% [markdown]
# **Exercise**: do the same for `"ddim_needs_many_steps"` and `"heun_dpm2_fewer_steps_twice_cost"`
# (`F.rejudge(claim_id, lab.evidence[claim_id], "tol", ...)`). Which verdicts move, and at what tolerance?

# %% [markdown]
# ## Step 5 · Ancestral and SDE samplers
#
# > "Ancestral samplers never converge, because of the random noise they add at every step." (es)
#
# Two halves: does each seed's image settle (ground truth and embedded model, N against 2N steps), and does the
# distribution of images settle (ground truth: MMD to the true distribution against its noise floor)?

# %%
ev = F.check("ancestral_never_converge", lab, out_dir=out)

# %% [markdown]
# > "SDE samplers never converge: more steps give variations, not quality, like the ancestral ones." (es)

# %%
ev = F.check("sde_never_converge", lab, out_dir=out)

# %% [markdown]
# > "Ancestral samplers land much further from the corresponding non-ancestral samplers, and closer to each
# > other." (ru)

# %%
ev = F.check("ancestral_far_from_twins", lab, out_dir=out)

# %% [markdown]
# > "DPM2 a generates images very similar to Euler a's on the previous seed." (ru)

# %%
ev = F.check("dpm2a_is_euler_a_previous_seed", lab, out_dir=out)

# %% [markdown]
# > "Euler a generates good results in few steps (5-10)." (ru)

# %%
ev = F.check("euler_a_good_at_few_steps", lab, out_dir=out)

# %% [markdown]
# > "DPM fast is useless at few steps, and gives a different result from the other samplers." (es)

# %%
ev = F.check("dpm_fast_different", lab, out_dir=out)

# %% [markdown]
# ## Step 6 · Same seed, same image?
#
# > "Ancestral (_a) samplers give more stable results, which do not differ when the generation is repeated."
# > (ru)
#
# Reruns, bit for bit; and a 0.1 % nudge of the initial noise, a stand-in for the tiny differences that
# non-deterministic GPU kernels make between runs.

# %%
ev = F.check("ancestral_same_on_rerun", lab, out_dir=out)

# %% [markdown]
# > "If the same seed does not reproduce an image, an ancestral sampler may be why: implementations add
# > different noise." (es)

# %%
ev = F.check("ancestral_not_reproducible_across_implementations", lab, out_dir=out)

# %% [markdown]
# ## Step 7 · The verdicts
#
# Every claim, its article and its computed verdict, saved as `verdicts.csv`, `verdicts.md` and `verdicts.png`.

# %%
for claim_id in F.CLAIMS:  # any claim not shown above
    if claim_id not in lab.evidence:
        F.check(claim_id, lab, out_dir=out)
verdicts = F.verdict_table(lab.evidence)
F.save_verdicts(verdicts, out)
print(verdicts["verdict"].value_counts().to_dict(), f"in {verdicts['seconds'].sum():.0f} s")
display(Image(filename=str(out / "verdicts.png")))
verdicts[["claim", "source", "verdict", "summary"]]

# %% [markdown]
# What the articles say that these experiments cannot settle, and why:

# %%
pd.DataFrame(F.NOT_TESTED, columns=["statement", "source", "why not tested"])

# %% [markdown]
# **Exercise**: run the whole set on a real checkpoint (`model="runwayml/stable-diffusion-v1-5"` or a
# `.safetensors` file, on a GPU): which image-level verdicts change? The ground-truth ones cannot.
#
# **Exercise**: write a claim of your own. An experiment is a function `lab -> F.Evidence`; build the table
# from `lab.run(...)` and `lab.gt_errors(...)`, and a judge that computes the verdict from it.
#
# ## Going further
# - `F.run_claims(smoke=False)` runs every claim outside a notebook and returns the verdict table and the
#   evidence.
# - `02_convergence` fits convergence exponents and compares them with published Stable Diffusion numbers.
# - `08_ground_truth` explains the true-error and MMD measurements the convergence claims stand on.
