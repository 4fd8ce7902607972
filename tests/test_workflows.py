"""Explore-then-refine on a tiny random-weight model: previews per seed, the handoff continues the chosen latents
exactly, re-noising, the picker widget; and the predictability sweep helpers."""

import math

import pytest
import torch

import sdlab
import sdlab.experiments as X
import sdlab.lab.workflows as W
from sdlab import SdlabError

PROMPT = "a red cat"
SIZE = (32, 32)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ex(tiny):
    return W.explore(PROMPT, sampler="Euler a", seeds=[0, 1, 2], steps=5, preview_last=3, model=tiny, size=SIZE)


def test_explore_keeps_one_preview_strip_per_seed_of_the_requested_length(ex):
    assert ex.preview_steps == [2, 3, 4]
    assert tuple(ex.previews["preview"].shape) == (3, 3, 3, 4, 4)  # latent resolution (32 / 8)
    assert tuple(ex.previews["full"].shape) == (3, 3, 3, 32, 32)
    strips = ex.strips(mode="preview")
    assert list(strips) == [0, 1, 2]
    assert {s.width for s in strips.values()} == {3 * 192 + 2 * 2}  # 3 tiles of 32 px shown at scale 6, 2 gaps
    assert ex.grid(mode="full").height > 3 * 192
    # Euler a's last step lands on its denoised guess (sigma_down = 0): the last full preview is the final image
    assert torch.allclose(ex.previews["full"][:, -1], ex.images, atol=1e-5)


@pytest.mark.parametrize("sampler", ["Euler", "Heun"])
def test_refine_with_the_explorers_own_deterministic_sampler_is_the_uninterrupted_run(tiny, sampler):
    alone = W.explore(PROMPT, sampler=sampler, seeds=[5], steps=6, preview_last=2, decode="preview", model=tiny,
                      size=SIZE)  # fmt: skip
    refined = W.refine(alone, 5, at_step=3, sampler=sampler)
    assert torch.equal(refined.latents, alone.result.latents)
    batch = W.explore(PROMPT, sampler=sampler, seeds=[4, 5], steps=6, preview_last=2, decode="preview", model=tiny,
                      size=SIZE)  # fmt: skip
    refined = W.refine(batch, 5, at_step=2, sampler=sampler)
    scale = batch.result.latents.abs().max()  # a batch of 2 vs 1 may round differently in the network's kernels
    assert torch.allclose(refined.latents[0], batch.result.latents[1], rtol=0, atol=2e-6 * scale)


def test_refine_continues_exactly_from_the_chosen_seeds_latents(ex):
    refined = W.refine(ex, 1, at_step=2, sampler="DPM++ 2M")
    first = refined.trajectories[0].steps[0]
    assert torch.equal(first["x"], ex.latent(1, 2))
    assert first["sigma"] == pytest.approx(float(ex.sigmas[2]))
    assert len(refined.trajectories[0]) == ex.steps - 2
    spec = refined.specs[0]
    assert (spec.seed, spec.start_step, spec.add_noise, spec.schedule) == (
        1,
        2,
        False,
        ex.schedule,
    ) and ex.schedule.lower() == "karras"
    explorer_guess = ex.result.trajectories[1].steps[2]["denoised"]  # same latent, same sigma: same guess
    assert torch.allclose(first["denoised"], explorer_guess, atol=1e-5)
    other = W.refine(ex, 2, at_step=2, sampler="DPM++ 2M")
    assert not torch.allclose(other.latents, refined.latents)


def test_renoise_adds_the_missing_variance_and_starts_earlier(ex):
    k, r = 3, 2
    a = W.refine(ex, 0, at_step=k, renoise_steps=r, noise_seed=1)
    b = W.refine(ex, 0, at_step=k, renoise_steps=r, noise_seed=1)
    c = W.refine(ex, 0, at_step=k, renoise_steps=r, noise_seed=2)
    assert torch.equal(a.latents, b.latents) and not torch.equal(a.latents, c.latents)
    first = a.trajectories[0].steps[0]
    assert a.specs[0].start_step == k - r and first["sigma"] == pytest.approx(float(ex.sigmas[k - r]))
    added = first["x"] - ex.latent(0, k)
    expected = math.sqrt(float(ex.sigmas[k - r]) ** 2 - float(ex.sigmas[k]) ** 2)
    assert added.std().item() == pytest.approx(expected, rel=0.25)  # 256 draws: the std is within ~5 %


def test_refine_rejects_what_it_cannot_continue(ex):
    with pytest.raises(SdlabError, match="not explored"):
        W.refine(ex, 9)
    with pytest.raises(SdlabError, match="renoise_steps"):
        W.refine(ex, 0, at_step=1, renoise_steps=2)
    with pytest.raises(SdlabError, match="other sigmas"):
        W.refine(ex, 0, sampler="DPM2")  # drops the penultimate sigma
    with pytest.raises(SdlabError, match="another schedule"):
        W.refine(ex, 0, sampler="DPM++ 2M Exponential")  # the exploration ran on Karras
    with pytest.raises(SdlabError, match="preview_last"):
        W.explore(PROMPT, steps=3, preview_last=4, model=ex.model)


def test_before_after_and_the_handoff_table(ex):
    refined = W.refine(ex, 2, at_step=3)
    shown = W.before_after(ex, refined)
    assert list(shown) == ["Euler a at step 3 (guess)", "Euler a final, seed 2", "DPM++ 2M from step 3"]
    assert torch.equal(shown["DPM++ 2M from step 3"], refined.images[0])
    table = W.refine_table(ex, refined)
    assert set(table["sampler"]) == {"Euler a alone", "Euler a -> DPM++ 2M at step 3"}
    nxt = table[table["comparison"] == "next"].set_index(["sampler", "step"])["value"]
    for i in range(2):  # before the handoff both paths are the explorer's own steps
        assert nxt["Euler a alone", i] == nxt["Euler a -> DPM++ 2M at step 3", i]
    assert sorted(table.loc[table["sampler"].str.contains("->"), "step"].unique()) == list(range(ex.steps))


def test_the_widget_builds_without_a_kernel_and_passes_the_pick(ex):
    widgets = pytest.importorskip("ipywidgets")
    picked = []
    box = W.explorer_widget(ex, on_pick=lambda seed, step: picked.append((seed, step)), static=False)
    assert isinstance(box, widgets.VBox)

    seed_picker = next(w for w in _find(box, widgets.ToggleButtons) if w.description == "seed")
    seed_picker.value = 2
    (step_slider,) = _find(box, widgets.SelectionSlider)
    step_slider.value = 3
    (button,) = _find(box, widgets.Button)
    button.click()
    assert picked == [(2, 3)]
    assert W.explorer_widget(ex, static=True).size == ex.grid().size  # the static fallback: the grid image


def _find(node, kind):
    found = [node] if isinstance(node, kind) else []
    for child in getattr(node, "children", ()):
        found += _find(child, kind)
    return found


def test_the_widget_offers_every_decoded_mode_and_redraws_the_grid_it_sits_above(ex):
    widgets = pytest.importorskip("ipywidgets")
    pytest.importorskip("IPython")
    import dataclasses

    # all three preview modes, as notebook 06 explores (the tiny decoder's tiles stand in for the test model's)
    every = dataclasses.replace(ex, previews={**ex.previews, "tiny": ex.previews["full"]})
    box = W.explorer_widget(every, static=False)
    view = next(w for w in _find(box, widgets.ToggleButtons) if w.description == "show")
    assert [v for _, v in view.options] == list(W.PREVIEW_MODES)
    assert [label for label, _ in view.options] == ["cheap linear preview", "tiny decoder, TAESD", "full VAE decode"]
    (grid,) = [w for w in _find(box, widgets.HTML) if "sdlab-grid" in w.value]
    controls, images, other, below = box.children
    assert view in _find(controls, widgets.ToggleButtons) and below is grid  # controls right above the grid
    assert isinstance(images, widgets.HTML) and isinstance(other, widgets.Output)  # the result under the button
    first = grid.value
    assert first.count("<img") == 9 and "width='192'" in first  # 32 px tiles at 6x, labels as HTML text
    assert "seed 2" in first and "pixelated" in first and first.count("sdlab-pick") == 2  # CSS rule + one tile
    for mode in ("tiny", "full", "preview"):
        view.value = mode
        assert grid.value != first or mode == "preview"
    assert grid.value == first
    seed = next(w for w in _find(box, widgets.ToggleButtons) if w.description == "seed")
    seed.value = 1
    assert grid.value != first  # the outline moved to the picked seed


def test_the_default_pick_shows_the_handoff_as_large_html_images(ex):
    widgets = pytest.importorskip("ipywidgets")
    box = W.explorer_widget(ex, static=False)
    seed = next(w for w in _find(box, widgets.ToggleButtons) if w.description == "seed")
    seed.value = 1
    _find(box, widgets.SelectionSlider)[0].value = 3
    _find(box, widgets.Button)[0].click()  # the default pick: DPM++ 2M from step 3, beside Euler a's images
    html = box.children[1].value
    assert html.count("<img") == 3 and html.count("width='192'") == 3 and "DPM++ 2M from step 3" in html
    assert W._result_html("not images") is None  # anything else goes to the Output, as IPython shows it


@pytest.fixture(scope="module")
def sweep(tiny):
    return X.predictability(
        "Euler", cfgs=(2, 5, 8), steps=(2, 3, 4), at_steps=3, seeds=[0, 1], prompt=PROMPT, model=tiny, size=SIZE,
        metrics=("latent_rmse", "ssim"),
    )  # fmt: skip


def test_sweep_images_follow_the_settings_and_the_largest_jump_is_marked(sweep, tiny):
    images = W.sweep_images(sweep, "cfg", seed=1)
    assert list(images) == [2.0, 5.0, 8.0]
    last = sdlab.generate(PROMPT, sampler="Euler", steps=3, cfg=8, seeds=[1], model=tiny, size=SIZE)
    assert (images[8.0] - last.images[0]).abs().max() < 1e-5  # made in a batch of 2 seeds, this one alone
    assert list(W.sweep_images(sweep, "steps")) == [2.0, 3.0, 4.0]
    jumps = W.sweep_jumps(sweep, "steps", seed=1)
    assert jumps["largest"].sum() == 1
    assert jumps.loc[jumps["largest"], "value"].item() == jumps["value"].max()
    closest = W.sweep_jumps(sweep, "steps", metric="ssim", seed=1)  # a similarity: the largest jump is the lowest
    assert closest.loc[closest["largest"], "value"].item() == closest["value"].min()
    strip = W.sweep_strip(sweep, "cfg", seed=1)
    assert strip.width == 3 * 192 + 2 * 4 + 2 * 4  # tiles at scale 6, gaps of 4, a margin of 4 each side


def test_jump_chart_has_one_line_per_result(sweep):
    pytest.importorskip("plotly")
    pytest.importorskip("matplotlib")
    fig = W.jump_chart({"Euler": sweep}, "steps")
    lines = [t for t in fig.data if t.name == "Euler"]
    assert len(lines) == 1 and list(lines[0].x) == [3.0, 4.0]
    assert str(lines[0].customdata[0][0]).startswith("data:image/png")
    twin = W.jump_chart(sweep, "steps", backend="matplotlib")
    assert len(twin.axes) == 1 + 3  # the chart and the three images of the sweep under it


def test_old_path_forwards_with_a_warning():
    import sdlab.workflows as old

    with pytest.warns(DeprecationWarning, match="sdlab.workflows moved to sdlab.lab.workflows"):
        assert old.refine is W.refine
