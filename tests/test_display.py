"""sdlab.viz.images and sdlab.viz.display: the one normaliser on every input form, strip and grid geometry and
labels, HTML output, the one PNG encoder, the old import paths."""

import base64
import io
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import sdlab.viz as D
from sdlab import SdlabError
from sdlab.viz import display


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _expected_uint8(t01: torch.Tensor) -> np.ndarray:
    """Independent reference: [0, 1] channels-first float -> channels-last uint8, round half to even."""
    return np.round(t01.double().numpy() * 255).astype(np.uint8).transpose(1, 2, 0)


# ---------------------------------------------------------------------------------------------------------------
# the normaliser


def test_float_tensor_unit_range_maps_0_to_0_and_1_to_255():
    t = torch.tensor([0.0, 0.25, 0.5, 1.0]).reshape(1, 2, 2).expand(3, 2, 2)
    a = D.to_uint8(t)
    assert a.shape == (2, 2, 3) and a.dtype == np.uint8
    assert a[..., 0].ravel().tolist() == [0, 64, 128, 255]  # 63.75 -> 64, 127.5 -> 128 (half to even)
    assert (a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all()


def test_value_range_minus_one_to_one():
    t = torch.tensor([-1.0, 0.0, 1.0, 0.5]).reshape(1, 2, 2).expand(3, 2, 2)
    a = D.to_uint8(t, value_range=(-1, 1))
    assert a[..., 0].ravel().tolist() == [0, 128, 255, 191]  # (x + 1) / 2 * 255: 127.5 -> 128, 191.25 -> 191
    assert (D.to_uint8(t, value_range=(-1, 1)) == D.to_uint8((t + 1) / 2)).all()


def test_batch_tensor_becomes_channels_last_stack():
    t = _rand(2, 3, 5, 7)
    a = D.to_uint8(t)
    assert a.shape == (2, 5, 7, 3)
    assert (a[1] == _expected_uint8(t[1])).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_float_dtypes(dtype):
    t = _rand(3, 4, 4).to(dtype)
    assert (D.to_uint8(t) == _expected_uint8(t.float())).all()


def test_tensor_needing_grad_and_uint8_tensor():
    t = _rand(3, 4, 4).requires_grad_(True)
    assert (D.to_uint8(t) == _expected_uint8(t.detach())).all()
    u = (torch.arange(48) * 5 % 256).to(torch.uint8).reshape(3, 4, 4)
    assert (D.to_uint8(u) == u.permute(1, 2, 0).numpy()).all()


@pytest.mark.parametrize("shape", [(1, 4, 6), (4, 6)])
def test_grey_tensor_repeated_to_rgb(shape):
    t = _rand(*shape)
    a = D.to_uint8(t)
    assert a.shape == (4, 6, 3)
    grey = np.round(t.reshape(4, 6).double().numpy() * 255).astype(np.uint8)
    for c in range(3):
        assert (a[..., c] == grey).all()


def test_numpy_uint8_is_kept_and_float_numpy_is_channels_last():
    u = np.random.default_rng(0).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    assert (D.to_uint8(u) == u).all()
    f = np.random.default_rng(1).random((2, 5, 6, 3))
    a = D.to_uint8(f)
    assert a.shape == (2, 5, 6, 3)
    assert (a == np.round(f * 255).astype(np.uint8)).all()
    grey = np.random.default_rng(2).integers(0, 256, (5, 6), dtype=np.uint8)
    assert (D.to_uint8(grey)[..., 2] == grey).all()


def test_pil_images_in_any_mode_become_rgb():
    u = np.random.default_rng(0).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    assert (D.to_uint8(Image.fromarray(u)) == u).all()
    grey = Image.fromarray(u[..., 0])
    assert (D.to_uint8(grey)[..., 1] == u[..., 0]).all()
    rgba = Image.fromarray(np.dstack([u, np.full((5, 6), 255, np.uint8)]))
    assert (D.to_uint8(rgba) == u).all()


def test_lists_and_dicts_mix_forms_and_dicts_give_titles():
    t = _rand(3, 4, 4)
    u = D.to_uint8(t)
    arrays, titles = D.to_images([t, u, Image.fromarray(u)])
    assert titles is None and len(arrays) == 3
    assert all((a == u).all() for a in arrays)
    arrays, titles = D.to_images({"a": t, "b": torch.stack([t, t])})
    assert titles == ["a", "b [0]", "b [1]"] and len(arrays) == 3
    assert D.to_uint8({"a": t, "b": t}).shape == (2, 4, 4, 3)


def test_to_pil_one_and_several():
    t = _rand(2, 3, 4, 5)
    one = D.to_pil(t[0])
    assert isinstance(one, Image.Image) and one.size == (5, 4) and one.mode == "RGB"
    several = D.to_pil(t)
    assert isinstance(several, list) and len(several) == 2
    assert (np.asarray(several[1]) == _expected_uint8(t[1])).all()
    assert (np.asarray(D.to_pil(t[0] * 2 - 1, value_range=(-1, 1))) == np.asarray(one)).all()


@pytest.mark.parametrize(
    ("image", "kwargs", "message"),
    [
        (torch.full((3, 4, 4), 1.5), {}, "outside value_range"),
        (torch.full((3, 4, 4), -0.5), {}, "outside value_range"),
        (torch.full((3, 4, 4), float("nan")), {}, "outside value_range"),
        (torch.zeros(4, 8, 8), {}, "latent"),
        (torch.zeros(3, 4, 4, dtype=torch.uint8), {"value_range": (0, 1)}, "uint8"),
        (torch.zeros(3, 4, 4, dtype=torch.int32), {}, "float or uint8"),
        (np.zeros((3, 4, 4)), {}, "channels last"),
        ("not an image", {}, "not an image"),
        (torch.zeros(3, 4, 4), {"value_range": (1, 0)}, "high > low"),
    ],
)
def test_bad_inputs_raise(image, kwargs, message):
    with pytest.raises(SdlabError, match=message):
        D.to_uint8(image, **kwargs)


def test_rounding_slack_is_clipped_but_not_more():
    a = D.to_uint8(torch.full((3, 2, 2), 1.0005))  # within 0.1 % of the range: float rounding
    assert (a == 255).all()
    with pytest.raises(SdlabError):
        D.to_uint8(torch.full((3, 2, 2), 1.01))


def test_stacking_different_sizes_raises():
    with pytest.raises(SdlabError, match="different sizes"):
        D.to_uint8([torch.zeros(3, 4, 4), torch.zeros(3, 5, 5)])


def test_upscale_is_nearest_neighbour_blocks():
    t = _rand(3, 4, 5)
    big = D.upscale(t, 3)
    assert big.shape == (12, 15, 3)
    small = D.to_uint8(t)
    assert (big == np.kron(small, np.ones((3, 3, 1), np.uint8))).all()
    with pytest.raises(SdlabError, match="scale"):
        D.upscale(t, 0)
    with pytest.raises(SdlabError, match="one image"):
        D.upscale(_rand(2, 3, 4, 4), 2)


# ---------------------------------------------------------------------------------------------------------------
# strips and grids


def _dark_pixels(img: Image.Image, box: tuple[int, int, int, int]) -> int:
    return int((np.asarray(img.crop(box).convert("L")) < 128).sum())


def test_strip_geometry_and_pixels():
    t = _rand(3, 3, 8, 8)
    strip = D.image_strip(t, scale=2, pad=2)
    assert strip.size == (3 * 16 + 2 * 2, 16)
    a = np.asarray(strip)
    assert (a[:, 18:34] == D.upscale(t[1], 2)).all()  # second image, enlarged, after one gap


def test_strip_titles_are_drawn_above_the_images():
    t = torch.ones(2, 3, 32, 32)  # white images: any dark pixel is text
    plain = D.image_strip(t, scale=2)
    titled = D.image_strip(t, titles=["Euler", "DPM++ 2M"], scale=2)
    assert titled.width == plain.width and titled.height > plain.height
    band = titled.height - plain.height
    assert _dark_pixels(titled, (0, 0, 64, band)) > 0 and _dark_pixels(titled, (66, 0, 130, band)) > 0
    assert _dark_pixels(titled, (0, band, titled.width, titled.height)) == 0
    keys = D.image_strip({"a": t[0], "b": t[1]})
    assert keys.height > D.image_strip(t).height  # dict keys become titles
    with pytest.raises(SdlabError, match="one title per image"):
        D.image_strip(t, titles=["only one"])


def test_strip_of_different_sizes():
    strip = D.image_strip([torch.zeros(3, 4, 4), torch.zeros(3, 6, 2)], pad=1)
    assert strip.size == (4 + 1 + 2, 6)


def test_grid_geometry_without_labels():
    t = _rand(2, 3, 3, 8, 8)  # (rows, cols, C, H, W)
    grid = D.image_grid(t, scale=2, pad=2)
    assert grid.size == (3 * 16 + 2 * 2, 2 * 16 + 2)
    a = np.asarray(grid)
    assert (a[18:34, 36:52] == D.upscale(t[1, 2], 2)).all()
    rows = D.image_grid([list(t[0]), t[1]], scale=2, pad=2)  # a list of rows: lists or batches
    assert (np.asarray(rows) == a).all()
    signed = D.image_grid([t[0] * 2 - 1, list(t[1] * 2 - 1)], scale=2, pad=2, value_range=(-1, 1))
    assert np.abs(np.asarray(signed).astype(int) - a).max() <= 1  # [-1, 1] rows, batches included


def test_grid_labels_and_missing_cells():
    white = torch.ones(3, 16, 16)
    cells = {"Euler": {10: white, 20: white}, "DPM++ 2M SDE Heun": {10: white}}
    grid = D.image_grid(cells, scale=2, pad=2)
    bare = D.image_grid([[white, white], [white, None]], scale=2, pad=2)
    assert grid.width > bare.width and grid.height > bare.height  # room for row and column labels
    left, top = grid.width - bare.width, grid.height - bare.height
    assert _dark_pixels(grid, (0, top, left, grid.height)) > 0  # row labels
    assert _dark_pixels(grid, (left, 0, grid.width, top)) > 0  # column labels
    missing = np.asarray(grid)[top + 34 + 5, left + 34 + 5]
    assert tuple(missing) == display._MISSING  # the empty cell (row 2, column 2)
    same = D.image_grid({("Euler", 10): white, ("Euler", 20): white, ("DPM++ 2M SDE Heun", 10): white}, scale=2)
    assert (np.asarray(same) == np.asarray(grid)).all()
    with pytest.raises(SdlabError, match="one row label per row"):
        D.image_grid([[white]], row_labels=["a", "b"])
    with pytest.raises(SdlabError, match="one image"):
        D.image_grid([[torch.stack([white, white])]])


def _table():
    rows, images = [], {}
    for sampler in ("Euler", "Heun"):
        for steps in (20, 5):
            for seed in (0, 1):
                name = f"{sampler}/{steps}/{seed}"
                images[name] = torch.full((3, 4, 4), (steps + seed) / 40)
                rows.append({"sampler": sampler, "steps": steps, "seed": seed, "image": name, "variant": sampler})
    return pd.DataFrame(rows), images


def test_grid_from_table_orders_numeric_columns_and_picks_the_seed():
    table, images = _table()
    grid = D.grid_from_table(table, images, rows="sampler", cols="steps", seed=1, scale=1)
    expected = D.image_grid(
        {s: {5: images[f"{s}/5/1"], 20: images[f"{s}/20/1"]} for s in ("Euler", "Heun")},
        col_labels=["5 steps", "20 steps"], scale=1, title="seed 1",
    )  # fmt: skip
    assert (np.asarray(grid) == np.asarray(expected)).all()
    with pytest.raises(SdlabError, match="no 'cfg' column"):
        D.grid_from_table(table, images, cols="cfg")


def test_images_from_table():
    table, images = _table()
    got = D.images_from_table(table, images, label="variant")
    assert list(got) == ["Euler", "Heun"] and got["Heun"] is images["Heun/20/0"]
    got = D.images_from_table(table, images, label="image", where={"steps": 5, "seed": 0})
    assert list(got) == ["Euler/5/0", "Heun/5/0"]


def test_save_image_writes_a_png_and_returns_it(tmp_path):
    t = _rand(3, 4, 4)
    img = D.save_image(t, tmp_path / "sub" / "x.png")
    assert isinstance(img, Image.Image)
    assert (np.asarray(Image.open(tmp_path / "sub" / "x.png")) == D.to_uint8(t)).all()


# ---------------------------------------------------------------------------------------------------------------
# HTML


def _decode_img_tags(html: str) -> list[np.ndarray]:
    out = []
    for part in html.split("base64,")[1:]:
        data = part.split("'", 1)[0]
        out.append(np.asarray(Image.open(io.BytesIO(base64.b64decode(data)))))
    return out


def test_show_images_returns_html_with_one_img_per_image():
    t = _rand(3, 3, 64, 64)
    html = D.show_images(t, titles=["a", "<b>", "c"], return_html=True)
    assert html.count("<img") == 3
    assert "&lt;b&gt;" in html and "<b>" not in html  # titles are escaped
    assert "width='192'" in html  # 64 px images shown at 3x by default, pixels kept sharp
    assert "pixelated" in html
    decoded = _decode_img_tags(html)
    assert all((d == D.to_uint8(t[k])).all() for k, d in enumerate(decoded))
    assert D.show_images({"x": t[0]}, scale=4, return_html=True).count("width='256'") == 1
    assert D.show_image(t[0], title="one", return_html=True).count("<img") == 1


def test_show_grid_is_an_html_table_with_text_labels_and_sharp_large_tiles():
    import sdlab.viz.display as display

    t = _rand(2, 3, 3, 64, 64)
    html = display.show_grid({"seed <0>": {"step 1": t[0, 0], "step 2": t[0, 1]}, "seed 1": {"step 1": t[1, 0]}},
                       title="picks", highlight=(1, 0), return_html=True)  # fmt: skip
    assert html.count("<img") == 3 and html.count("width='192'") == 3  # 64 px at 3x by default
    assert "<th>seed &lt;0&gt;</th>" in html and "<th>step 2</th>" in html and "<caption>picks</caption>" in html
    assert "image-rendering:pixelated" in html
    assert html.count("<td class='sdlab-pick'>") == 1 and "background:#eee" in html  # the outline, an empty cell
    decoded = _decode_img_tags(html)
    assert (decoded[2] == D.to_uint8(t[1, 0])).all()
    assert display.show_grid([[t[0, 0]]], scale=4, return_html=True).count("width='256'") == 1
    with pytest.raises(SdlabError, match="one row label per row"):
        display.show_grid([[t[0, 0]]], row_labels=["a", "b"], return_html=True)
    assert display.show_grid([[t[0, 0]]]) is None  # outside IPython: nothing shown


def test_show_images_outside_ipython_shows_nothing():
    assert D.show_images(_rand(3, 8, 8)) is None


def test_data_urls_and_thumbnails():
    t = _rand(3, 64, 64)
    url = D.image_data_url(t)
    assert url.startswith("data:image/png;base64,")
    (decoded,) = _decode_img_tags(url + "'")
    assert (decoded == D.to_uint8(t)).all()
    big = D.thumbnail_url(_rand(3, 256, 192), max_size=128)
    (thumb,) = _decode_img_tags(big + "'")
    assert thumb.shape == (128, 96, 3)
    (small,) = _decode_img_tags(D.thumbnail_url(t, max_size=128) + "'")
    assert small.shape == (64, 64, 3)


def test_importing_viz_and_lab_stays_light():
    code = (
        "import sys, sdlab, sdlab.viz, sdlab.viz.charts, sdlab.lab.workflows, sdlab.lab.report; "
        "heavy = [m for m in ('plotly', 'matplotlib', 'ipywidgets', 'diffusers', 'IPython') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_old_paths_forward_with_a_warning():
    import sdlab.display as old_display
    import sdlab.groundtruth.plots as old_plots
    from sdlab.viz.groundtruth import plot_samples

    with pytest.warns(DeprecationWarning, match="sdlab.display moved to sdlab.viz"):
        assert old_display.image_strip is D.image_strip
    with pytest.warns(DeprecationWarning, match="sdlab.groundtruth.plots moved to sdlab.viz.groundtruth"):
        assert old_plots.plot_samples is plot_samples
    with pytest.warns(DeprecationWarning):
        from sdlab.display import to_uint8
    assert to_uint8 is D.to_uint8


def test_one_png_encoder_round_trips():
    a = D.to_uint8(_rand(3, 16, 12))
    assert D.png_data_url(D.png_bytes(a)) == D.image_data_url(a)
    assert (np.asarray(Image.open(io.BytesIO(D.png_bytes(a)))) == a).all()
