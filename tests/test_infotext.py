"""A1111 infotext: format, parse (A1111's reading rules) and PNG text chunks (sdlab.infotext)."""

from __future__ import annotations

import json
import os

import pytest
from PIL import Image

from sdlab.errors import SdlabError
from sdlab.infotext import format_infotext, parse_infotext, read_png, write_png

# An infotext as A1111 v1.10 create_infotext writes it: Euler a with a chosen Karras schedule and rho, NV RNG,
# ENSD (Euler a uses it and eta != 0), a variation seed, a LoRA (its hashes are JSON-quoted: they hold a
# colon), then the sampler's extras (Schedule rho from get_sigmas, Eta from initialize) and the version.
A1111_TEXT = (
    "masterpiece, a red fox in the snow, (detailed fur:1.2)\n"
    "<lora:fox_v2:0.8>, winter forest\n"
    "Negative prompt: lowres, bad anatomy, watermark\n"
    "Steps: 30, Sampler: Euler a, Schedule type: Karras, CFG scale: 7, Seed: 3407, Size: 512x768, "
    "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, VAE hash: 735e4c3a44, "
    "VAE: vae-ft-mse-840000-ema-pruned.safetensors, Variation seed: 42, Variation seed strength: 0.3, "
    'Clip skip: 2, ENSD: 31337, RNG: NV, Lora hashes: "fox_v2: 0a1b2c3d4e5f", Schedule rho: 5, Eta: 0.67, '
    "Version: v1.10.1"
)

A1111_PARSED = {
    "prompt": "masterpiece, a red fox in the snow, (detailed fur:1.2)\n<lora:fox_v2:0.8>, winter forest",
    "negative_prompt": "lowres, bad anatomy, watermark",
    "Steps": 30,
    "Sampler": "Euler a",
    "Schedule type": "Karras",
    "CFG scale": 7.0,
    "Seed": 3407,
    "Size": (512, 768),
    "Model hash": "6ce0161689",
    "Model": "v1-5-pruned-emaonly",
    "VAE hash": "735e4c3a44",
    "VAE": "vae-ft-mse-840000-ema-pruned.safetensors",
    "Variation seed": 42,
    "Variation seed strength": 0.3,
    "Clip skip": 2,
    "ENSD": 31337,
    "RNG": "NV",
    "Lora hashes": "fox_v2: 0a1b2c3d4e5f",
    "Schedule rho": 5.0,
    "Eta": 0.67,
    "Version": "v1.10.1",
}

REPRESENTATIVE = {
    "prompt": 'a "quoted" cat, sitting: on a mat\nsecond line (with, commas)',
    "negative_prompt": "blurry\nextra limbs",
    "Steps": 20,
    "Sampler": "DPM++ 2M SDE",
    "Schedule type": "Exponential",
    "CFG scale": 6.5,
    "Seed": 4294967295,
    "Size": (1024, 576),
    "Model": "sd_xl_base_1.0",
    "Clip skip": 1,
    "RNG": "CPU",
    "Schedule min sigma": 0.0292,
    "Schedule max sigma": 14.6146,
    "Schedule rho": 7.0,
    "Beta schedule alpha": 0.6,
    "Beta schedule beta": 0.6,
    "Discard penultimate sigma": True,
    "SGM noise multiplier": False,
    "Eta": 1.0,
    "Sigma churn": 0.5,
    "Sigma tmin": 0.05,
    "Sigma tmax": 50.0,
    "Sigma noise": 1.003,
    "Seed resize from": (768, 512),
    "Tiling": True,
    "Custom key": "value, with: punctuation",
    "Empty": "",
    "Spaced": "  padded  ",
    "Leading quote": '"hello',
    "Version": "v1.10.1",
}


def test_a1111_infotext_parses_to_typed_params():
    assert parse_infotext(A1111_TEXT, defaults=False) == A1111_PARSED


def test_a1111_reading_fills_a1111_defaults():
    parsed = parse_infotext("a cat\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 512x512")
    assert parsed["Clip skip"] == 1 and parsed["RNG"] == "GPU" and parsed["Schedule type"] == "Automatic"
    assert parsed["Schedule min sigma"] == parsed["Schedule max sigma"] == parsed["Schedule rho"] == 0
    assert parsed["negative_prompt"] == ""
    assert parse_infotext(A1111_TEXT)["Clip skip"] == 2  # a present key wins over the default


def test_reformatting_an_a1111_infotext_reads_back_the_same():
    parsed = parse_infotext(A1111_TEXT, defaults=False)
    text = format_infotext(parsed)
    assert parse_infotext(text, defaults=False) == parsed
    # A1111's key order and quoting; only the floats written as ints by A1111's UI read back as "7.0"
    assert text == A1111_TEXT.replace("CFG scale: 7,", "CFG scale: 7.0,").replace(
        "Schedule rho: 5,", "Schedule rho: 5.0,"
    )


@pytest.mark.parametrize("defaults", [False, True])
def test_round_trip_with_quotes_multiline_prompts_and_every_type(defaults):
    text = format_infotext(REPRESENTATIVE)
    assert text.count("\n") == 4  # two prompt lines, two negative lines, the parameters
    assert parse_infotext(text, defaults=defaults) == REPRESENTATIVE  # every default key is present already


def test_a1111_order_fixed_keys_first_version_last():
    text = format_infotext({"Version": "v1", "Eta": 0.5, "Seed": 1, "Steps": 2, "prompt": "p"})
    assert text == "p\nSteps: 2, Seed: 1, Eta: 0.5, Version: v1"


def test_sizes_may_be_given_as_wxh_strings():
    text = format_infotext({"prompt": "p", "Steps": 2, "Seed": 1, "Size": "640x480"})
    assert text == "p\nSteps: 2, Seed: 1, Size: 640x480"
    assert parse_infotext(text)["Size"] == (640, 480)


def test_none_values_are_left_out_and_empty_prompts_work():
    text = format_infotext({"Steps": 2, "Seed": 1, "Sampler": "Euler", "Eta": None, "negative_prompt": "bad"})
    assert text == "Negative prompt: bad\nSteps: 2, Sampler: Euler, Seed: 1"
    assert parse_infotext(text, defaults=False) == {
        "prompt": "",
        "negative_prompt": "bad",
        "Steps": 2,
        "Sampler": "Euler",
        "Seed": 1,
    }


@pytest.mark.parametrize(
    ("sampler", "expected"),
    [
        ("DPM++ 2M Karras", ("DPM++ 2M", "Karras")),
        ("DPM++ 2M SDE Exponential", ("DPM++ 2M SDE", "Exponential")),
        ("Euler a SGMUniform", ("Euler a", "SGM Uniform")),
        ("Euler karras", ("Euler", "Karras")),
        ("DPM++ 2M SDE Heun", ("DPM++ 2M SDE Heun", "Automatic")),  # Heun is no schedule
        ("DDIM", ("DDIM", "Automatic")),
    ],
)
def test_legacy_sampler_names_split_off_the_schedule(sampler, expected):
    parsed = parse_infotext(f"cat\nSteps: 20, Sampler: {sampler}, CFG scale: 7, Seed: 1")
    assert (parsed["Sampler"], parsed["Schedule type"]) == expected


def test_legacy_split_only_without_a_schedule_type_key():
    parsed = parse_infotext("cat\nSteps: 20, Sampler: DPM++ 2M Karras, Schedule type: Exponential, Seed: 1")
    assert (parsed["Sampler"], parsed["Schedule type"]) == ("DPM++ 2M Karras", "Exponential")


def test_a_short_last_line_is_prompt_as_in_a1111():
    parsed = parse_infotext("a cat\nSteps: 20, Seed: 1", defaults=False)
    assert parsed == {"prompt": "a cat\nSteps: 20, Seed: 1", "negative_prompt": ""}


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("Steps: abc, Sampler: Euler, Seed: 1", "Steps"),
        ("Steps: 20, Sampler: Euler, Size: 512by512", "Size"),
        ("Steps: 20, Sampler: Euler, Seed: 1.5", "Seed"),
        ("Steps: 20, Sampler: Euler, CFG scale: high", "CFG scale"),
        ("Steps: 20, Sampler: Euler, RNG: gpu", "RNG"),
        ("Steps: 20, Sampler: Euler, Tiling: yes", "Tiling"),
        ("Steps: 20, Sampler: Euler, Seed: 1, Seed: 2", "Seed"),
        ("Steps: 20, Sampler: Euler, Seed 1, CFG scale: 7", "Seed 1"),
        ('Steps: 20, Sampler: Euler, Seed: 1, Model: "bad \\x escape"', "Model"),
    ],
)
def test_bad_fields_raise_naming_the_field(line, field):
    with pytest.raises(SdlabError) as err:
        parse_infotext("cat\n" + line)
    assert err.value.context["field"] == field


def test_bad_rng_hint_suggests_the_source():
    with pytest.raises(SdlabError, match="did you mean 'GPU'"):
        parse_infotext("cat\nSteps: 20, Sampler: Euler, RNG: gpu")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"Steps": "20", "Seed": 1, "Sampler": "Euler"}, "must be an int"),
        ({"Steps": 20, "Seed": 1, "Size": "512 x 512"}, "(width, height)"),
        ({"Steps": 20, "Seed": 1, "Size": (512.0, 512)}, "(width, height)"),
        ({"Steps": 20, "Seed": 1, "Tiling": 1}, "True or False"),
        ({"Steps": 20, "Seed": 1, "RNG": "cuda"}, "one of GPU"),
        ({"Steps": 20, "Seed": 1, "Bad:key": "v"}, "cannot read"),
        ({"Steps": 20, "Seed": 1, "X": "v"}, "cannot read"),
        ({"Steps": 20, "Seed": 1, "Extra": [1, 2]}, "strings or numbers"),
        ({"Steps": 20, "Seed": 1, "Negative prompt": "x"}, "not a parameter key"),
        ({"Steps": 20, "Seed": 1}, "at least three"),
        ({"Steps": 20, "Seed": 1, "Sampler": "Euler", "prompt": "a\nNegative prompt: b"}, "Negative prompt"),
        ({"Steps": 20, "Seed": 1, "Sampler": "Euler", "prompt": 3}, "must be a string"),
    ],
)
def test_format_rejects_what_a1111_could_not_read_back(params, message):
    with pytest.raises(SdlabError, match=message.replace("(", r"\(").replace(")", r"\)")):
        format_infotext(params)


# -- PNG ---------------------------------------------------------------------------------------------------------


def test_png_write_read_round_trip(tmp_path):
    image = Image.new("RGB", (8, 6), (200, 30, 10))
    spec = {"sampler": "Euler a", "steps": 30, "seeds": [3407], "schedule": {"name": "karras", "rho": 5.0}}
    text = A1111_TEXT.replace("red fox", "red fox ü 狐")  # non-Latin-1 text needs an iTXt chunk
    path = write_png(tmp_path / "fox.png", image, text, spec)
    infotext, got_spec = read_png(path)
    assert infotext == text and got_spec == spec
    with Image.open(path) as im:
        assert im.size == (8, 6) and im.getpixel((0, 0)) == (200, 30, 10)
        assert im.text["parameters"] == text and json.loads(im.text["sdlab"]) == spec
    assert sorted(os.listdir(tmp_path)) == ["fox.png"]  # no temporary file left


def test_png_without_spec_and_plain_png(tmp_path):
    image = Image.new("L", (4, 4))
    path = write_png(tmp_path / "a.png", image, "cat\nSteps: 1, Seed: 2, Sampler: Euler")
    assert read_png(path) == ("cat\nSteps: 1, Seed: 2, Sampler: Euler", None)
    image.save(tmp_path / "plain.png")
    assert read_png(tmp_path / "plain.png") == (None, None)


def test_png_write_is_atomic_on_failure(tmp_path):
    path = tmp_path / "keep.png"
    write_png(path, Image.new("RGB", (2, 2)), "old\nSteps: 1, Seed: 2, Sampler: Euler")
    before = path.read_bytes()

    class Broken(Image.Image):
        def save(self, *args, **kwargs):
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_png(path, Broken(), "new\nSteps: 1, Seed: 2, Sampler: Euler")
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["keep.png"]
    with pytest.raises(SdlabError, match="JSON"):
        write_png(path, Image.new("RGB", (2, 2)), "x", {"bad": object()})
    assert path.read_bytes() == before


def test_png_bad_inputs(tmp_path):
    with pytest.raises(SdlabError, match="PIL image"):
        write_png(tmp_path / "a.png", [[0]], "x")
    with pytest.raises(SdlabError, match="folder does not exist"):
        write_png(tmp_path / "missing" / "a.png", Image.new("L", (2, 2)), "x")
    with pytest.raises(SdlabError, match="no such file"):
        read_png(tmp_path / "nope.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(SdlabError, match="not an image"):
        read_png(tmp_path / "text.png")
    Image.new("RGB", (2, 2)).save(tmp_path / "real.jpg")
    with pytest.raises(SdlabError, match="not a PNG"):
        read_png(tmp_path / "real.jpg")
