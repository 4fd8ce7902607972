"""Explore with an ancestral sampler, then converge: look at many seeds cheaply, pick one, finish it properly.

>>> import sdlab.lab.workflows as W
>>> from sdlab.viz import display
>>> ex = W.explore("a red circle above a blue square, sunset sky", seeds=range(4), steps=20)   # Euler a
>>> ex.grid()                                  # seeds x the last 8 steps' denoised guesses (a PIL image)
>>> refined = W.refine(ex, 2, at_step=14)      # DPM++ 2M continues seed 2's latent from step 14
>>> display.image_strip(W.before_after(ex, refined), scale=2)

Ancestral and SDE samplers (Euler a, DPM2 a, DPM++ 2S a, DPM++ SDE ...) add fresh noise at every step, so they
never settle: each seed, and each step count, is another variation, which is what exploring wants. Deterministic
solvers (DPM++ 2M) converge. :func:`refine` is ComfyUI's two-KSamplerAdvanced handoff: the explorer's latent at
step k, which still holds sigma_k of noise, is continued by the refiner from step k on the same sigmas
(``start_step=k, add_noise=False``). ``renoise_steps=r`` first adds fresh noise up to sigma_(k-r) and continues
from step k-r: more noise, more change ("repeat with more noise or seeds until satisfied"). With the explorer's
own sampler and no renoise, a refine is the uninterrupted run.

Also here, for the predictability notebook: :func:`sweep_images`, :func:`sweep_strip` (the largest jump
between neighbouring settings outlined) and :func:`jump_chart`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sdlab.errors import SdlabError, closest
from sdlab.experiments import SIMILARITIES, decode_latents, step_deltas
from sdlab.generation import GenerateResult, Trajectory, generate, load, schedule_for
from sdlab.samplers import resolve_sampler
from sdlab.viz.charts import live_widgets
from sdlab.viz.charts.render import render
from sdlab.viz.charts.series import ChartAxes, ChartLine, summarise
from sdlab.viz.display import DISPLAY_SIZE, image_grid, image_strip, show_grid, show_images
from sdlab.viz.images import to_uint8
from sdlab.viz.palette import HIGHLIGHT, rgb, sampler_color

__all__ = [
    "PREVIEW_MODES",
    "Exploration",
    "explore",
    "refine",
    "renoise",
    "before_after",
    "refine_table",
    "explorer_widget",
    "sweep_images",
    "sweep_jumps",
    "sweep_strip",
    "jump_chart",
]

# how a denoised guess becomes an image: A1111's cheap linear preview, its TAESD preview, the full VAE decode
_PREVIEW_NAMES = {"preview": "cheap linear preview", "tiny": "tiny decoder, TAESD", "full": "full VAE decode"}
PREVIEW_MODES = tuple(_PREVIEW_NAMES)


# ---------------------------------------------------------------------------------------------------------------
# explore


@dataclass
class Exploration:
    """One exploring run: its settings, the run (trajectories included) and the images of its last steps.

    ``previews[mode]`` is ``(seeds, len(preview_steps), 3, h, w)`` in [0, 1]: the denoised guess (x0) at each
    previewed step, by A1111's cheap linear preview (``"preview"``, latent resolution) or the VAE (``"full"``).
    """

    prompt: str
    negative_prompt: str
    sampler: str
    schedule: str  # as resolved ("Karras", "uniform" ...): the refiner runs on the very same sigmas
    steps: int
    cfg: float
    seeds: list[int]
    size: tuple[int, int]  # (width, height)
    rng: str
    model: Any  # the loaded SDModel
    result: GenerateResult  # final images (seeds, 3, H, W) in [0, 1], final latents, one trajectory per seed
    preview_steps: list[int]  # the step indices previewed: the last ``preview_last`` of the run
    previews: dict[str, Tensor]

    @property
    def images(self) -> Tensor:
        """The explorer's final images, (seeds, 3, H, W) in [0, 1]."""
        return self.result.images

    @property
    def sigmas(self) -> Tensor:
        """The schedule the explorer ran on (steps + 1 noise levels, ending in 0)."""
        return self.result.sigmas

    def index(self, seed: int) -> int:
        """The position of ``seed`` among the explored seeds."""
        if seed not in self.seeds:
            raise SdlabError("this seed was not explored", seed=seed, hint=f"pick one of {self.seeds}")
        return self.seeds.index(seed)

    def latent(self, seed: int, step: int) -> Tensor:
        """The explorer's latent for ``seed`` as it entered step ``step`` (noise level sigma_step), (C, h, w)."""
        traj = self.result.trajectories[self.index(seed)]
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or not 0 <= step < len(traj):
            raise SdlabError("step out of range", step=step, steps=len(traj), hint=f"0 <= step < {len(traj)}")
        return traj.steps[int(step)]["x"]

    def strip(self, seed: int, *, mode: str = "preview", scale: int | None = None) -> Any:
        """The denoised guesses of ``seed`` at the previewed steps side by side (a ``PIL.Image``)."""
        images = self._tiles(mode)[self.index(seed)]
        sig = self.sigmas
        titles = [f"step {i} (sigma {float(sig[i]):.2g})" for i in self.preview_steps]
        return image_strip(list(images), titles=titles, scale=scale or _auto_scale(images))

    def strips(self, *, mode: str = "preview", scale: int | None = None) -> dict[int, Any]:
        """``{seed: strip}``: one strip per explored seed (see :meth:`strip`)."""
        return {s: self.strip(s, mode=mode, scale=scale) for s in self.seeds}

    def grid(self, *, mode: str = "preview", scale: int | None = None) -> Any:
        """Seeds (rows) x previewed steps (columns) of denoised guesses, as one labelled ``PIL.Image``."""
        tiles = self._tiles(mode)
        steps = list(enumerate(self.preview_steps))
        cells = {f"seed {s}": {f"step {i}": tiles[r, c] for c, i in steps} for r, s in enumerate(self.seeds)}
        title = f"{self.sampler}, {self.steps} steps: the denoised guess at the last steps ({_PREVIEW_NAMES[mode]})"
        return image_grid(cells, scale=scale or _auto_scale(tiles[0]), title=title)

    def grid_html(self, *, mode: str = "preview", pick: tuple[int, int] | None = None) -> str:
        """The :meth:`grid` as HTML: tiles at least 192 px with sharp pixels, labels as text at display size;
        ``pick=(seed, step)`` outlines that tile."""
        tiles = self._tiles(mode)
        cells = [list(tiles[r]) for r in range(len(self.seeds))]
        sig = self.sigmas
        cols = [f"step {i} (sigma {float(sig[i]):.2g})" for i in self.preview_steps]
        rows = [f"seed {s}" for s in self.seeds]
        at = None
        if pick is not None and pick[0] in self.seeds and pick[1] in self.preview_steps:
            at = (self.seeds.index(pick[0]), self.preview_steps.index(pick[1]))
        title = f"{self.sampler}, {self.steps} steps: the denoised guess at the last steps ({_PREVIEW_NAMES[mode]})"
        return show_grid(cells, row_labels=rows, col_labels=cols, title=title, highlight=at, return_html=True) or ""

    def guess(self, seed: int, step: int, *, mode: str = "full") -> Tensor:
        """The explorer's denoised guess for ``seed`` at ``step``, one image (3, H, W) in [0, 1]."""
        index = self.index(seed)
        self.latent(seed, step)  # checks the step
        if step in self.preview_steps and mode in self.previews:
            return self._tiles(mode)[index, self.preview_steps.index(step)]
        denoised = self.result.trajectories[index].steps[step]["denoised"][None]
        return _upsample(_decode(self.model, denoised, _mode(mode)), self.images.shape[-2:])[0]

    def _tiles(self, mode: str) -> Tensor:
        """``previews[mode]`` at the size of the final images (latent-sized previews enlarged, nearest)."""
        if mode not in self.previews:
            raise SdlabError(
                f"no {mode!r} previews in this exploration", mode=mode, have=sorted(self.previews),
                hint=f"explore(..., decode={PREVIEW_MODES}) keeps all three",
            )  # fmt: skip
        images = self.previews[mode]
        n, k = images.shape[:2]
        return _upsample(images.flatten(0, 1), self.images.shape[-2:]).unflatten(0, (n, k))


def explore(
    prompt: str,
    *,
    sampler: str = "Euler a",
    schedule: str = "Karras",
    steps: int = 20,
    cfg: float = 5.0,
    seeds: Sequence[int] | int = (0, 1, 2, 3),
    preview_last: int = 8,
    decode: Sequence[str] | str = ("preview", "full"),
    negative_prompt: str = "",
    model: Any = None,
    size: tuple[int, int] | str | None = None,
    rng: str = "GPU",
    device: str | None = None,
    progress: bool = False,
    **sampler_options: Any,
) -> Exploration:
    """Run ``sampler`` (an ancestral one by default) over ``seeds`` and keep the last ``preview_last`` steps'
    denoised guesses of each, by the cheap linear preview, the tiny decoder (TAESD) and/or the VAE (``decode``).

    One batched :func:`sdlab.generate` with ``trajectory=True``: every seed's latents at every step are kept, so
    :func:`refine` can continue any seed from any step without running the explorer again. ``"full"`` costs one
    VAE decode per seed and previewed step. The refiner runs on the explorer's schedule: Karras by default, which
    suits both Euler a and DPM++ 2M (its A1111 default); on "Automatic" Euler a runs on A1111's Uniform, where
    DPM++ 2M's last steps are rough.

    >>> ex = explore("a red circle above a blue square, sunset sky", seeds=[0, 1, 2], steps=12, preview_last=6)
    >>> ex.previews["preview"].shape      # (seeds, preview_last, 3, h, w): latent-sized, in [0, 1]
    torch.Size([3, 6, 3, 16, 16])
    """
    if not isinstance(prompt, str):
        raise SdlabError("explore takes one prompt (a string)", type=type(prompt).__name__)
    seeds = [seeds] if isinstance(seeds, int) else [int(s) for s in seeds]
    if len(set(seeds)) != len(seeds):
        raise SdlabError("explore each seed once", seeds=seeds)
    if isinstance(preview_last, bool) or not isinstance(preview_last, int) or not 1 <= preview_last <= steps:
        raise SdlabError("preview_last must be an integer from 1 to steps", preview_last=preview_last, steps=steps)
    modes = [_mode(m) for m in ([decode] if isinstance(decode, str) else decode)]
    sd = load(model, device=device)
    result = generate(
        prompt, negative_prompt=negative_prompt, sampler=sampler, schedule=schedule, steps=steps, cfg=cfg,
        seeds=seeds, size=size, model=sd, rng=rng, trajectory=True, progress=progress, **sampler_options,
    )  # fmt: skip
    n = min(len(t) for t in result.trajectories)
    if n < preview_last:
        raise SdlabError("the run recorded fewer steps than preview_last", sampler=sampler, recorded=n)
    picked = list(range(n - preview_last, n))
    denoised = torch.stack([torch.stack([t.steps[i]["denoised"] for i in picked]) for t in result.trajectories])
    flat = denoised.flatten(0, 1)
    previews = {m: _decode(sd, flat, m).unflatten(0, (len(seeds), preview_last)) for m in dict.fromkeys(modes)}
    spec = result.specs[0]
    return Exploration(
        prompt=prompt, negative_prompt=negative_prompt, sampler=sampler, schedule=spec.schedule_resolved,
        steps=steps, cfg=float(cfg), seeds=seeds, size=(spec.width, spec.height), rng=rng, model=sd,
        result=result, preview_steps=picked, previews=previews,
    )  # fmt: skip


def _mode(mode: str) -> str:
    if mode not in PREVIEW_MODES:
        raise SdlabError(f"unknown preview mode {mode!r}", mode=mode, hint=closest(str(mode), PREVIEW_MODES))
    return mode


def _decode(sd: Any, latents: Tensor, mode: str) -> Tensor:
    """Latents (B, C, h, w) to images in [0, 1] on the CPU: the VAE in batches, TAESD or the linear preview."""
    return decode_latents(sd, latents, mode=mode)


def _upsample(images: Tensor, size: Sequence[int]) -> Tensor:
    """Images (B, 3, h, w) enlarged to ``size`` (H, W) by nearest neighbour; unchanged when already that size."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return torch.nn.functional.interpolate(images, size=tuple(size), mode="nearest")


def _auto_scale(images: Tensor) -> int:
    """The integer scale that shows a (.., H, W) image at least 192 px high (1 for large images)."""
    return max(1, math.ceil(DISPLAY_SIZE / int(images.shape[-2])))


# ---------------------------------------------------------------------------------------------------------------
# refine


def renoise(x: Tensor, sigma_from: float, sigma_to: float, *, generator: torch.Generator) -> Tensor:
    """A latent at noise level ``sigma_from`` brought up to ``sigma_to`` with fresh Gaussian noise:
    ``x + sqrt(sigma_to^2 - sigma_from^2) * eps`` (variances add; the forward process of VE diffusion)."""
    if sigma_to < sigma_from:
        raise SdlabError("renoise only adds noise", sigma_from=sigma_from, sigma_to=sigma_to)
    eps = torch.randn(tuple(x.shape), generator=generator, dtype=torch.float32)
    return x + math.sqrt(sigma_to**2 - sigma_from**2) * eps.to(x)


def _noise_generator(seed: int, noise_seed: int, step: int) -> torch.Generator:
    """A CPU generator for re-noising, mixed from the image seed, ``noise_seed`` and the step (SeedSequence), so it
    never replays the seed's own initial noise."""
    state = np.random.SeedSequence([seed % 2**32, noise_seed % 2**32, step]).generate_state(2, dtype=np.uint32)
    return torch.Generator("cpu").manual_seed(int(state[0]) << 32 | int(state[1]))


def refine(
    exploration: Exploration,
    seed: int,
    *,
    at_step: int | None = None,
    sampler: str = "DPM++ 2M",
    renoise_steps: int = 0,
    noise_seed: int = 0,
    trajectory: bool = True,
    progress: bool = False,
    **sampler_options: Any,
) -> GenerateResult:
    """Continue ``seed`` of an exploration from step ``at_step`` with a converging ``sampler`` (the handoff).

    The explorer's latent as it entered ``at_step`` (default: the first previewed step) holds sigma_at_step of
    noise; the refiner takes it from there on the explorer's own sigmas (``start_step=at_step``,
    ``add_noise=False``), with the same prompt, CFG, size and RNG. ``renoise_steps=r`` first adds fresh noise
    (its own generator, from ``seed``, ``noise_seed`` and the step: change ``noise_seed`` for another variation)
    up to sigma_(at_step - r) and starts r steps earlier: the larger r, the more the image may change.

    Returns the refiner's :class:`~sdlab.generation.GenerateResult` for that one seed; its spec records
    ``start_step`` (at_step - r) and ``add_noise=False``. Its trajectory (``trajectory=True``) numbers steps from
    0 at ``start_step``.
    """
    ex = exploration
    index = ex.index(seed)
    at_step = ex.preview_steps[0] if at_step is None else at_step
    traj = ex.result.trajectories[index]
    x = ex.latent(seed, at_step)
    if isinstance(renoise_steps, bool) or not isinstance(renoise_steps, int) or not 0 <= renoise_steps <= at_step:
        raise SdlabError(
            "renoise_steps must be an integer from 0 to at_step", renoise_steps=renoise_steps, at_step=at_step
        )
    start = at_step - renoise_steps
    sigmas = _shared_sigmas(ex, sampler)
    recorded = traj.steps[at_step]
    if not math.isclose(recorded["sigma_hat"], recorded["sigma"], rel_tol=1e-6) or not math.isclose(
        recorded["sigma"], float(sigmas[at_step]), rel_tol=1e-5
    ):
        raise SdlabError(
            "the explorer's latent at this step is not at the schedule's sigma (churn or an adaptive sampler)",
            explorer=ex.sampler, at_step=at_step, sigma=recorded["sigma"], sigma_hat=recorded["sigma_hat"],
            hint="explore with an ancestral or SDE sampler without s_churn",
        )  # fmt: skip
    if renoise_steps:
        gen = _noise_generator(seed, noise_seed, at_step)
        x = renoise(x, float(sigmas[at_step]), float(sigmas[start]), generator=gen)
    return generate(
        ex.prompt, negative_prompt=ex.negative_prompt, sampler=sampler, schedule=ex.schedule, steps=ex.steps,
        cfg=ex.cfg, seeds=[seed], size=ex.size, model=ex.model, rng=ex.rng, start_step=start, add_noise=False,
        latents=x[None], trajectory=trajectory, progress=progress,
        always_discard_penultimate=_discards(ex.sampler), **sampler_options,
    )  # fmt: skip


def _discards(sampler: str) -> bool:
    return resolve_sampler(sampler).discard_penultimate


def _shared_sigmas(ex: Exploration, sampler: str) -> Tensor:
    """The explorer's sigmas, after checking that ``sampler`` would run on exactly them."""
    resolved = resolve_sampler(sampler)
    if ex.schedule == "diffusers" or ex.schedule.endswith("timesteps") or resolved.front_end == "diffusers":
        raise SdlabError(
            "a handoff needs k-diffusion samplers on one sigma schedule", explorer=ex.sampler, refiner=sampler,
            schedule=ex.schedule, hint='explore with e.g. "Euler a" and refine with e.g. "DPM++ 2M"',
        )  # fmt: skip
    if resolved.schedule and resolved.schedule.lower() != ex.schedule.lower():
        raise SdlabError(
            "the refiner's name carries another schedule than the exploration ran on", refiner=sampler,
            schedule=ex.schedule, hint=f"refine with the plain name, or explore with schedule={resolved.schedule!r}",
        )  # fmt: skip
    mine, _ = schedule_for(resolved, ex.schedule, ex.steps, ex.model, always_discard_penultimate=_discards(ex.sampler))
    if mine.shape != ex.sigmas.shape or not torch.allclose(mine.double(), ex.sigmas.double(), rtol=1e-5, atol=0):
        raise SdlabError(
            "the refiner would run on other sigmas than the explorer (it drops the penultimate sigma?)",
            explorer=ex.sampler, refiner=sampler, schedule=ex.schedule,
            hint="pick a refiner that keeps every sigma, e.g. DPM++ 2M, Euler, Heun or LMS",
        )  # fmt: skip
    return ex.sigmas


def _results(refined: GenerateResult | Sequence[GenerateResult] | Mapping[str, GenerateResult]) -> dict[str, Any]:
    """{title: one-seed result}; untitled results are named by sampler and start step."""
    if isinstance(refined, GenerateResult):
        refined = [refined]
    items = list(refined.items()) if isinstance(refined, Mapping) else [(None, r) for r in refined]
    if not items:
        raise SdlabError("give at least one refined result")
    out: dict[str, Any] = {}
    for title, result in items:
        if not isinstance(result, GenerateResult) or len(result.specs) != 1:
            raise SdlabError("each refined result must be one image from refine()", type=type(result).__name__)
        spec = result.specs[0]
        title = title or f"{spec.sampler} from step {spec.start_step}"
        out[title if title not in out else f"{title} ({len(out)})"] = result
    return out


def before_after(
    exploration: Exploration,
    refined: GenerateResult | Sequence[GenerateResult] | Mapping[str, GenerateResult],
    *,
    mode: str = "full",
) -> dict[str, Tensor]:
    """``{title: image}`` (each (3, H, W) in [0, 1]) for :func:`sdlab.viz.display.image_strip`: the explorer's guess
    at the handoff step, the explorer's own final image, then each refined image (one result, a list, or
    ``{title: result}``; untitled ones are named "<sampler> from step k"). All must be of one seed."""
    results = _results(refined)
    seeds = {r.specs[0].seed for r in results.values()}
    if len(seeds) != 1:
        raise SdlabError("before_after compares refines of one seed", seeds=sorted(seeds))
    seed = seeds.pop()
    ex = exploration
    start = min(r.specs[0].start_step for r in results.values())
    out = {
        f"{ex.sampler} at step {start} (guess)": ex.guess(seed, start, mode=mode),
        f"{ex.sampler} final, seed {seed}": ex.images[ex.index(seed)],
    }
    for title, result in results.items():
        out[title] = result.images[0]
    return out


def refine_table(exploration: Exploration, refined: GenerateResult) -> Any:
    """Per-step change of the denoised guess along the explorer's own run and along the handoff path (explorer
    steps before ``start_step``, then the refiner's), steps numbered from the start of the explorer's run: a
    long table for :func:`sdlab.viz.charts.delta_chart` (latent RMSE, ``next`` and ``final`` rows)."""
    import pandas as pd

    (result,) = _results(refined).values()
    if result.trajectories is None:
        raise SdlabError("the refined result has no trajectory", hint="refine(..., trajectory=True)")
    spec = result.specs[0]
    ex, start = exploration, spec.start_step
    own = ex.result.trajectories[ex.index(spec.seed)]
    tail = [{**s, "i": s["i"] + start} for s in result.trajectories[0].steps]
    path = Trajectory(steps=own.steps[:start] + tail)
    runs = {
        f"{ex.sampler} alone": (own, ex.result.latents[ex.index(spec.seed)]),
        f"{ex.sampler} -> {spec.sampler} at step {start}": (path, result.latents[0]),
    }
    rows = []
    for label, (traj, final) in runs.items():
        for row in step_deltas(traj, final):
            row["step"] = traj.steps[row["step"]]["i"]
            rows.append({"sampler": label, "schedule_resolved": ex.schedule, "seed": spec.seed, **row})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------------
# the picker


def explorer_widget(
    exploration: Exploration,
    on_pick: Callable[[int, int], Any] | None = None,
    *,
    static: bool | None = None,
) -> Any:
    """Pick a seed and a handoff step from an exploration: an ipywidgets box with the controls on top (preview
    mode, seed, step slider, Refine button), the refined result right below them, and the seeds x steps grid
    (HTML, tiles of at least 192 px) with the pick outlined.

    The button calls ``on_pick(seed, step)`` and shows what it returns under the controls: ``{title: image}`` or a
    batch as HTML images of at least 192 px (sharp pixels, titles as text), anything else as IPython displays
    it; the default refines with DPM++ 2M and shows :func:`before_after`. ``static`` (default: when
    :func:`sdlab.viz.charts.chart_mode` is not ``"widget"``, e.g. under papermill, or ipywidgets is missing) returns
    the grid as a ``PIL.Image`` instead: pick in code then.
    """
    widgets = live_widgets(static)
    modes = [m for m in PREVIEW_MODES if m in exploration.previews]
    if not modes:
        raise SdlabError("the exploration has no previews", hint=f"explore(..., decode={PREVIEW_MODES})")
    if widgets is None:
        return exploration.grid(mode=modes[0])
    return _widget(widgets, exploration, on_pick or _default_pick(exploration), modes)


def _default_pick(ex: Exploration) -> Callable[[int, int], Any]:
    def pick(seed: int, step: int) -> Any:
        return before_after(ex, refine(ex, seed, at_step=step))

    return pick


def _result_html(shown: Any) -> str | None:
    """What ``on_pick`` returned as HTML images at display size (``{title: image}`` or a batch), else None."""
    if isinstance(shown, (Mapping, Tensor)):
        return show_images(shown, return_html=True)
    return None


def _widget(widgets: Any, ex: Exploration, on_pick: Callable[[int, int], Any], modes: list[str]) -> Any:
    fit = {"button_width": "auto"}  # buttons as wide as their labels
    view = widgets.ToggleButtons(options=[(_PREVIEW_NAMES[m], m) for m in modes], description="show", style=fit)
    seed = widgets.ToggleButtons(options=[(str(s), s) for s in ex.seeds], description="seed", style=fit)
    step = widgets.SelectionSlider(options=ex.preview_steps, value=ex.preview_steps[0], description="from step")
    button = widgets.Button(description="Refine", button_style="primary", tooltip="continue this seed")
    grid = widgets.HTML()
    images = widgets.HTML()  # a result of images: HTML as the grid's (sharp pixels, 192 px, text labels)
    out = widgets.Output()  # any other result, as IPython displays it
    for control in (view, seed, step, button):
        control.add_class("sdlab-explorer-control")
    grid.add_class("sdlab-explorer-grid")
    images.add_class("sdlab-explorer-result")
    out.add_class("sdlab-explorer-result")

    def redraw(_: Any = None) -> None:
        grid.value = ex.grid_html(mode=view.value, pick=(seed.value, step.value))

    def clicked(_: Any) -> None:
        from IPython.display import display

        shown = on_pick(seed.value, step.value)
        html = _result_html(shown)
        images.value = html or ""
        with out:
            out.clear_output(wait=True)
            if html is None and shown is not None:
                display(shown)

    for control in (view, seed, step):
        control.observe(redraw, names="value")
    button.on_click(clicked)
    redraw()
    # the controls on top, the refined result right under its button, the grid they outline under both
    controls = widgets.VBox([view, seed, widgets.HBox([step, button])])
    return widgets.VBox([controls, images, out, grid])


# ---------------------------------------------------------------------------------------------------------------
# predictability sweeps: images in order, the jumps between them


_SWEEPS = ("cfg", "steps")


def _sweep_rows(res: Any, sweep: str, seed: int | None) -> tuple[Any, int]:
    """The rows of one sweep of a :func:`sdlab.experiments.predictability` result, for one seed (default: first)."""
    if sweep not in _SWEEPS:
        raise SdlabError(f"unknown sweep {sweep!r}", sweep=sweep, hint=closest(str(sweep), _SWEEPS))
    table = res.table
    for column in ("comparison", "setting_from", "setting_to", "image", "against_image", "seed", "metric", "value"):
        if column not in table.columns:
            raise SdlabError(f"the table has no {column!r} column", hint="pass a predictability() result")
    rows = table[table["comparison"] == sweep]
    if rows.empty:
        raise SdlabError(f"no {sweep} sweep in this result", hint="the sweep needs at least two settings")
    seed = int(rows["seed"].iloc[0]) if seed is None else seed
    rows = rows[rows["seed"] == seed]
    if rows.empty:
        raise SdlabError("this seed is not in the sweep", seed=seed, have=sorted(table["seed"].unique().tolist()))
    return rows, seed


def _label(sweep: str, value: float) -> str:
    return f"{int(value)} steps" if sweep == "steps" else f"CFG {value:g}"


def sweep_images(res: Any, sweep: str = "cfg", *, seed: int | None = None) -> dict[float, Any]:
    """``{setting: image}`` in setting order for one seed (default: the first) along the ``"cfg"`` or ``"steps"``
    sweep of :func:`sdlab.experiments.predictability`; images (3, H, W) in [0, 1]."""
    rows, _ = _sweep_rows(res, sweep, seed)
    rows = rows.drop_duplicates("setting_from").sort_values("setting_from")
    names = {float(v): name for v, name in zip(rows["setting_from"], rows["image"], strict=True)}
    last = rows.iloc[-1]
    names[float(last["setting_to"])] = str(last["against_image"])
    missing = [n for n in names.values() if n not in res.images]
    if missing:
        raise SdlabError("the result has no image under this name", image=missing[0], hint="pass the result itself")
    return {v: res.images[n] for v, n in names.items()}


def sweep_jumps(res: Any, sweep: str = "cfg", *, metric: str = "latent_rmse", seed: int | None = None) -> Any:
    """One row per neighbouring pair of settings (``setting_from``, ``setting_to``, ``value``) for one seed, with
    ``largest`` marking the biggest change (the smallest similarity for ssim / psnr)."""
    rows, _ = _sweep_rows(res, sweep, seed)
    rows = rows[rows["metric"] == metric]
    if rows.empty:
        have = sorted(res.table["metric"].unique().tolist())
        raise SdlabError(f"no rows for metric {metric!r}", metric=metric, hint=closest(metric, have))
    jumps = rows[["setting_from", "setting_to", "value"]].sort_values("setting_from").reset_index(drop=True)
    finite = jumps["value"].where(np.isfinite(jumps["value"]))
    where = finite.idxmin() if metric in SIMILARITIES else finite.idxmax()
    return jumps.assign(largest=jumps.index == where)


def sweep_strip(
    res: Any, sweep: str = "cfg", *, metric: str = "latent_rmse", seed: int | None = None, scale: int | None = None
) -> Any:
    """One seed's images along a predictability sweep, in setting order, each titled with its change from the
    previous setting (``metric``); the pair with the largest jump is outlined in red. A ``PIL.Image``."""
    from PIL import Image, ImageDraw

    images = sweep_images(res, sweep, seed=seed)
    jumps = sweep_jumps(res, sweep, metric=metric, seed=seed)
    value = dict(zip(jumps["setting_to"].astype(float), jumps["value"], strict=True))
    top = float(jumps.loc[jumps["largest"], "setting_to"].iloc[0])
    titles = []
    for v in images:
        text = _label(sweep, v)
        if v in value:
            text += f"\n{metric} {value[v]:.3g}" + (" (largest)" if v == top else "")
        titles.append(text)
    tiles = list(images.values())
    scale = scale or _auto_scale(tiles[0])
    pad, margin = 4, 4
    strip = image_strip(tiles, titles=titles, scale=scale, pad=pad)
    canvas = Image.new("RGB", (strip.width + 2 * margin, strip.height + 2 * margin), (255, 255, 255))
    canvas.paste(strip, (margin, margin))
    k = list(images).index(top)
    width = int(tiles[0].shape[-1]) * scale
    left = margin + (k - 1) * (width + pad)
    right = margin + k * (width + pad) + width
    ImageDraw.Draw(canvas).rectangle(
        (left - 3, margin - 3, right + 2, margin + strip.height + 2), outline=rgb(HIGHLIGHT), width=2
    )
    return canvas


def jump_chart(
    results: Any,
    sweep: str = "cfg",
    *,
    metric: str = "latent_rmse",
    images: bool = True,
    title: str | None = None,
    backend: str = "plotly",
) -> Any:
    """How much the image changes between neighbouring settings of a predictability sweep, against the setting:
    one line per result (a result, a list or ``{label: result}``; label default: its sampler), the median over
    seeds with a min-max band. Hover a point to see the image after the jump; the matplotlib twin (the saved PNG)
    draws the first result's images of its first seed under the chart."""
    named = results if isinstance(results, Mapping) else None
    items = list(named.items()) if named else [(None, r) for r in (results if isinstance(results, list) else [results])]
    lines, notes, strip = [], [], []
    log_y = metric not in SIMILARITIES
    for k, (label, res) in enumerate(items):
        _, seed = _sweep_rows(res, sweep, None)
        rows = res.table[(res.table["comparison"] == sweep) & (res.table["metric"] == metric)]
        if rows.empty:
            raise SdlabError(f"no rows for metric {metric!r}", metric=metric, sweep=sweep)
        label = label or str(rows["sampler"].iloc[0])
        rows = rows.assign(image=rows["against_image"])  # the image after the jump

        def hover(g: Any) -> str:
            return f"<br>{_label(sweep, g['setting_from'].iloc[0])} -> {_label(sweep, g['setting_to'].iloc[0])}"

        xs, ys, lo, hi, thumbs, texts = summarise(
            rows, "setting_to", log_y=log_y, images=res.images if images else None, hover=hover
        )
        color = sampler_color(str(rows["sampler"].iloc[0]))
        lines.append(ChartLine(label, xs, ys, lo, hi, color, thumbs=thumbs, hover=texts, group=label))
        if ys:
            at = int(np.argmin(ys) if not log_y else np.argmax(ys))
            notes.append(f"{label}: largest jump into {_label(sweep, xs[at])} ({ys[at]:.3g}, median over seeds)")
        if k == 0:
            pictures = sweep_images(res, sweep, seed=seed)
            strip = [(_label(sweep, v), to_uint8(img)) for v, img in pictures.items()]
    axes = ChartAxes(
        title or f"How much the image jumps from one {'CFG scale' if sweep == 'cfg' else 'step count'} to the next",
        "CFG scale (jump into this setting)" if sweep == "cfg" else "steps (jump into this step count)",
        f"{metric} from the previous setting" + ("" if log_y else " (higher is closer)"),
        ylog=log_y,
        notes=[*notes, "line: median over seeds; band: min to max"],
    )
    return render(lines, axes, backend, strip=strip)
