"""A1111 infotext: format, parse (A1111's reading rules) and PNG text chunks (sdlab.infotext)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import time

import pytest
import torch
from PIL import Image

from sdlab.errors import SdlabError
from sdlab.infotext import (
    MAX_CHARS,
    SCHEDULE_LABELS,
    _count_pairs,
    _split_pairs,
    format_infotext,
    parse_infotext,
    read_png,
    write_png,
)

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


# -- parse_infotext: linear time, A1111's pair grammar, only SdlabError (issue #14) ------------------------------

# The pair grammar as a plain backtracking regex (A1111's re_param_code, which sdlab used to search with): the
# reference the linear-time reader must agree with, match for match.
REFERENCE_PAIR = re.compile(r"""\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)""")

MB = 1_000_000
ADVERSARIAL = {  # infotexts of about n characters that a backtracking reader takes quadratic time on
    "one word": lambda n: "x" * n,
    "key characters": lambda n: "a b-c/d " * (n // 8),
    "commas": lambda n: "ab," * (n // 3),
    "unbalanced quotes": lambda n: '"' * n,
    "keys and colons": lambda n: "ab: " * (n // 4),
    "colons without keys": lambda n: ": " * (n // 2),
    "nested quotes": lambda n: 'Steps: 1, Seed: 2, Model: "' + 'a \\"b: \\"c, ' * (n // 13) + '"',
    "open JSON string": lambda n: 'Steps: 1, Seed: 2, Model: "' + "a" * n,
    "open escapes": lambda n: 'Steps: 1, Seed: 2, Model: "' + "\\" * n,
    "newlines": lambda n: "a\n" * (n // 2),
    "backslashes": lambda n: "\\" * n,
    "many pairs": lambda n: "p\n" + "".join(f"K{i}: {i}, " for i in range(n // 14)),
    "many quoted pairs": lambda n: "p\n" + "".join(f'K{i}: "a, b", ' for i in range(n // 18)),
    "negative prompt lines": lambda n: "Negative prompt: x\n" * (n // 19),
    "long number": lambda n: "p\nSteps: 1, Seed: 2, CFG scale: " + "1" * n,
}


@contextlib.contextmanager
def _deadline(seconds: float):
    """Fail (rather than hang for hours) when the block runs longer than ``seconds``."""

    def expire(signum, frame):
        raise TimeoutError(f"over {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _parse_seconds(text: str) -> float:
    start = time.process_time()
    with _deadline(20), contextlib.suppress(SdlabError):
        parse_infotext(text)
    return time.process_time() - start


@pytest.mark.parametrize("shape", list(ADVERSARIAL))
def test_parse_time_is_linear_on_adversarial_text(shape):
    """1 MB and 4 MB parse in well under a second each here (quadratic before: 6.6 s at 40 kB, hours at 1 MB)."""
    one, four = ADVERSARIAL[shape](MB), ADVERSARIAL[shape](4 * MB)
    t1, t4 = _parse_seconds(one), _parse_seconds(four)
    assert t1 < 2.0 and t4 < 8.0, (t1, t4)
    assert t4 < 8 * max(t1, 0.05), (t1, t4)  # linear: 4x the text, about 4x the time (quadratic: 16x)


def test_text_over_the_size_limit_is_refused():
    assert MAX_CHARS >= 8 * 2**20
    with pytest.raises(SdlabError, match="longer than"):
        parse_infotext("x" * (MAX_CHARS + 1))


def _random_lines(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    pieces = ["a", "b1", "_", " ", "-", "/", ":", ",", '"', "\\", "\t", "\r", "\u00a0", "é", "٣", "ab: ", ", ", '"x"']
    return ["".join(rng.choice(pieces) for _ in range(rng.randrange(30))) for _ in range(count)]


def test_pairs_are_found_as_the_backtracking_grammar_finds_them():
    for line in _random_lines(4000, seed=14):
        assert _count_pairs(line, 10**9) == len(REFERENCE_PAIR.findall(line)), line
        chain, pos = [], 0
        while line[pos:].strip():  # the strict reading: pairs back to back, nothing else
            m = REFERENCE_PAIR.match(line, pos)
            if m is None:
                chain = None
                break
            chain.append(m.groups())
            pos = m.end()
        if chain is None:
            with pytest.raises(SdlabError, match="not 'Key: value'"):
                list(_split_pairs(line))
        else:
            assert list(_split_pairs(line)) == chain, line


@pytest.mark.parametrize("text", [None, b"Steps: 1, Seed: 2, Sampler: Euler", 3, 1.5, ["a"], {"Steps": 1}])
def test_parse_refuses_what_is_not_a_string(text):
    with pytest.raises(SdlabError, match="must be a string"):
        parse_infotext(text)


@pytest.mark.parametrize(
    "text",
    [
        "p\nSteps: 1, Seed: " + "9" * 5000 + ", Sampler: Euler",  # longer than Python's int() reads
        "p\nSteps: 1, Seed: 2, Size: " + "9" * 5000 + "x1",
        'p\nSteps: 1, Seed: 2, RNG: "' + "x" * 10000 + '"',
        'p\nSteps: 1, Seed: 2, Model: "\\ud800 \\u12"',
    ],
)
def test_unreadable_values_raise_sdlab_error_with_a_short_message(text):
    with pytest.raises(SdlabError) as err:
        parse_infotext(text)
    assert "Exceeds the limit" not in str(err.value) and len(str(err.value)) < 400


def test_blank_lines_before_the_text_of_a_prompt_drop_as_in_a1111():
    """A1111 joins lines with a line break only once the text is not empty; later blank lines stay."""
    parsed = parse_infotext("a\n\nb\n\nNegative prompt:\n\n  bad \n\nworse\n\nSteps: 1, Seed: 2, Sampler: Euler")
    assert (parsed["prompt"], parsed["negative_prompt"]) == ("a\n\nb\n", "bad\n\nworse\n")


# -- A1111's "no size" (issue #15, defect 3) ---------------------------------------------------------------------


def test_a1111_api_no_resize_value_reads_as_none():
    text = "a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, Seed resize from: -1x-1"
    parsed = parse_infotext(text, defaults=False)
    assert parsed["Seed resize from"] is None and parsed["Size"] == (512, 512)
    assert "Seed resize from" not in format_infotext(parsed)  # None is "not given", as A1111 reads it


def test_a1111_api_no_resize_value_reruns():
    from sdlab.spec import from_a1111

    text = "a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, Seed resize from: -1x-1"
    assert "seed_resize_from" not in from_a1111(parse_infotext(text))  # -1x-1: no resize
    assert from_a1111(parse_infotext(text.replace("-1x-1", "768x512")))["seed_resize_from"] == (768, 512)


@pytest.mark.parametrize(
    ("value", "expected"), [("-1x-1", None), ("-1x512", None), ("0x0", (0, 0)), ("0x512", (0, 512))]
)
def test_size_values_a1111_writes(value, expected):
    parsed = parse_infotext(f"cat\nSteps: 20, Sampler: Euler, Seed: 1, Hires resize: {value}")
    assert parsed["Hires resize"] == expected


# -- naming the sampler and schedule that ran (issue #14) --------------------------------------------------------

A1111_SCHEDULE_NAMES = {n for label, name, aliases in SCHEDULE_LABELS for n in (label, name, *aliases)}


def _rerun(result):
    """Save the result's infotext, read it back, and run what it describes."""
    import sdlab
    from sdlab.spec import from_a1111

    text = format_infotext(result.specs[0].to_a1111())
    kwargs = from_a1111(parse_infotext(text))
    return text, kwargs, sdlab.generate(kwargs.pop("prompt"), **kwargs)


@pytest.mark.parametrize(
    ("sampler", "schedule", "options", "written"),
    [
        # ComfyUI semantics A1111 does not have under these names: written so A1111 cannot mistake them
        ("dpm_fast", "Automatic", {}, ("dpm_fast (ComfyUI)", "Automatic")),
        ("dpm_fast", "karras", {"eta": 1.0}, ("dpm_fast (ComfyUI)", "Karras")),  # A1111's eta, not its range
        ("dpm_adaptive", "karras", {}, ("dpm_adaptive (ComfyUI)", "Karras")),
        ("euler", "beta", {}, ("Euler", "beta_comfy (ComfyUI)")),
        ("euler", "kl_optimal", {}, ("Euler", "kl_optimal_comfy (ComfyUI)")),
        ("euler", "AlignYourStepsScheduler", {}, ("Euler", "align_your_steps_comfy (ComfyUI)")),
        ("dpmpp_3m_sde", "karras", {}, ("dpmpp_3m_sde (ComfyUI)", "Karras")),  # A1111 drops the penultimate sigma
        ("ddim", "normal", {}, ("ddim (ComfyUI)", "Normal")),  # ComfyUI's ddim is Euler steps
        ("deis", "linear_quadratic", {}, ("deis (ComfyUI)", "linear_quadratic (ComfyUI)")),
        ("DPM++ SDE", "Automatic", {"r": 0.3}, ("DPM++ SDE (sdlab)", "Automatic")),  # an option A1111 cannot write
        # exactly A1111's: A1111's labels
        ("Euler", "Beta", {}, ("Euler", "Beta")),
        ("Euler a", "KL Optimal", {}, ("Euler a", "KL Optimal")),
        ("euler", "karras", {}, ("Euler", "Karras")),
        ("euler_ancestral", "normal", {}, ("Euler a", "Normal")),  # eta 1 in both
        ("euler_ancestral", "sgm_uniform", {"eta": 0.5}, ("Euler a", "SGM Uniform")),  # with "Eta: 0.5"
        ("dpmpp_2m", "Automatic", {}, ("DPM++ 2M", "Automatic")),
        ("dpmpp_2m_sde_gpu", "exponential", {}, ("DPM++ 2M SDE", "Exponential")),
        ("DPM++ 2M SDE Karras", "Automatic", {}, ("DPM++ 2M SDE", "Karras")),  # not Automatic: that is Exponential
        ("DDIM", "Automatic", {}, ("DDIM", "Automatic")),
        ("Euler", "simple", {"s_churn": 0.5}, ("Euler", "Simple")),  # churn noise is seeded with ENSD too
    ],
)
def test_saved_infotext_names_what_ran_and_reruns_the_same_image(sampler, schedule, options, written):
    import sdlab
    from sdlab.generation import load, schedule_for
    from sdlab.samplers.catalogue import A1111_SAMPLERS, resolve_sampler
    from sdlab.spec import _effective_options

    first = sdlab.generate("a red fox", sampler=sampler, schedule=schedule, steps=3, seeds=[5], ensd=31337, **options)
    text, kwargs, again = _rerun(first)
    params = parse_infotext(text)
    assert (params["Sampler"], params["Schedule type"]) == written, text
    if written[0] not in A1111_SAMPLERS:  # A1111's lookups do not know the name, so cannot claim it
        assert not written[0].endswith(tuple(f" {n}" for n in A1111_SCHEDULE_NAMES))
    assert (written[1] in A1111_SCHEDULE_NAMES) == (not written[1].endswith(")"))

    spec, respec = first.specs[0], again.specs[0]
    ran, reran = resolve_sampler(spec.sampler), resolve_sampler(respec.sampler)
    front_end = "a1111" if written[0] in A1111_SAMPLERS else ran.front_end
    assert (reran.info.key, reran.front_end) == (ran.info.key, front_end)
    # the same options in effect (the sampler function's defaults filled in) and the same sigmas
    effective = _effective_options(ran.info, dict(spec.sampler_options))
    assert _effective_options(reran.info, dict(respec.sampler_options)) == effective
    model = load()  # the embedded model both ran on
    assert torch.equal(schedule_for(ran, spec.schedule, 3, model)[0], schedule_for(reran, respec.schedule, 3, model)[0])
    assert torch.equal(first.latents, again.latents)  # so re-running gives the same image


def test_every_comfy_sampler_name_is_written_as_a1111_only_when_a1111_runs_it_the_same():
    from sdlab.samplers.catalogue import SAMPLERS, resolve_sampler
    from sdlab.spec import a1111_names

    # not lms: ComfyUI's ends with a plain denoise where the next sigma is 0 (since 2025), A1111's with an LMS step
    same_in_a1111 = {
        "euler", "euler_ancestral", "heun", "dpm_2", "dpm_2_ancestral", "dpmpp_2m", "dpmpp_sde",
        "dpmpp_2m_sde", "dpmpp_2m_sde_heun", "dpmpp_2s_ancestral",
    }  # fmt: skip
    for info in SAMPLERS.values():
        for name in info.comfy:
            resolved = resolve_sampler(name)
            names = a1111_names(resolved, "Automatic", resolved.options)
            assert names.sampler_is_a1111 == (info.key in same_in_a1111), name
            assert names.sampler == (info.a1111 if info.key in same_in_a1111 else f"{info.comfy[0]} (ComfyUI)")
        if info.a1111:  # A1111's own names are A1111's
            assert a1111_names(info.a1111, "Automatic", resolve_sampler(info.a1111).options).sampler == info.a1111


def test_schedule_table_covers_a1111s_schedules_and_nothing_else():
    from sdlab.schedules import list_schedules
    from sdlab.spec import A1111_SCHEDULES

    assert sorted(A1111_SCHEDULES.values()) == sorted(label for label, _, _ in SCHEDULE_LABELS)
    sources = {s.name: s.source for s in list_schedules()}
    assert all(sources[name] in ("A1111", "both") for name in A1111_SCHEDULES)
    assert {name for name, source in sources.items() if source == "A1111"} <= set(A1111_SCHEDULES)


def test_from_a1111_reads_names_as_a1111_does():
    from sdlab.spec import from_a1111

    def names(line):
        kw = from_a1111(parse_infotext("cat\n" + line))
        return kw["sampler"], kw["schedule"]

    assert names("Steps: 20, Sampler: Euler, Schedule type: beta, Seed: 1") == ("Euler", "Beta")  # A1111's own name
    assert names("Steps: 20, Sampler: Euler, Schedule type: kl_optimal, Seed: 1") == ("Euler", "KL Optimal")
    # A1111 takes a schedule in the sampler's name over the Schedule type key
    assert names("Steps: 20, Sampler: DPM++ 2M Karras, Schedule type: Exponential, Seed: 1") == ("DPM++ 2M", "Karras")
    assert names("Steps: 20, Sampler: dpm_fast (ComfyUI), Schedule type: beta_comfy (ComfyUI), Seed: 1") == (
        "dpm_fast",
        "beta_comfy",
    )
    kw = from_a1111(parse_infotext(A1111_TEXT.replace("Variation seed: 42, Variation seed strength: 0.3, ", "")))
    assert {k: kw[k] for k in ("sampler", "schedule", "steps", "cfg", "seeds", "size", "clip_skip", "rng")} == {
        "sampler": "Euler a",
        "schedule": "Karras",
        "steps": 30,
        "cfg": 7.0,
        "seeds": [3407],
        "size": (512, 768),
        "clip_skip": 2,
        "rng": "NV",
    }
    assert (kw["ensd"], kw["rho"], kw["eta"]) == (31337, 5.0, 0.67)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("Steps: 20, Sampler: Euler, Schedule type: Karras", "no Seed"),
        ("Steps: 20, Sampler: Euler, Seed: 1, Variation seed strength: 0.3", "without a Variation seed"),
        ("Steps: 20, Sampler: Euler, Seed: 1, Hires upscale: 2", "Hires upscale"),
        ("Steps: 20, Sampler: Nonesuch, Seed: 1", "unknown sampler"),
        ("Steps: 20, Sampler: Euler, Schedule type: nonesuch (ComfyUI), Seed: 1", "unknown schedule"),
        ('Steps: 20, Sampler: deis (ComfyUI), Seed: 1, sdlab options: "[1]"', "JSON object"),
    ],
)
def test_from_a1111_refuses_what_it_cannot_rerun(line, message):
    from sdlab.spec import from_a1111

    with pytest.raises(SdlabError, match=message):
        from_a1111(parse_infotext("cat\n" + line))


# --- the corpus re-run (sdlab.rerun.read_run) ----------------------------------------------------------------


def test_the_a1111_corpus_maps_every_field_sdlab_runs():
    from sdlab.rerun import read_run

    with pytest.raises(SdlabError, match="field='prompt'.*<lora:fox_v2:0.8>"):
        read_run(A1111_TEXT)  # the LoRA tag: sdlab loads no extra networks
    params = dict(A1111_PARSED, prompt=A1111_PARSED["prompt"].replace("<lora:fox_v2:0.8>, ", ""))
    for field in ("Lora hashes", "VAE"):  # each named in turn, then left out
        with pytest.raises(SdlabError, match=f"field='{field}'"):
            read_run(params)
        params = {k: v for k, v in params.items() if k != field}
    kwargs = read_run(params)
    assert kwargs == {
        "prompt": "masterpiece, a red fox in the snow, (detailed fur:1.2)\nwinter forest",
        "negative_prompt": "lowres, bad anatomy, watermark",
        "sampler": "Euler a",
        "schedule": "Karras",
        "steps": 30,
        "cfg": 7.0,
        "seeds": [3407],
        "size": (512, 768),
        "clip_skip": 2,
        "rng": "NV",
        "ensd": 31337,
        "sigma_min": None,
        "sigma_max": None,
        "rho": 5.0,
        "eta": 0.67,
        "subseeds": [42],
        "subseed_strength": 0.3,
    }


def test_the_representative_params_map_what_generate_runs():
    from sdlab.rerun import read_run

    with pytest.raises(SdlabError, match="field='Tiling'"):
        read_run(REPRESENTATIVE)
    with pytest.raises(SdlabError, match="field='Custom key'"):
        read_run(REPRESENTATIVE, ignore=["Tiling"])
    kwargs = read_run(REPRESENTATIVE, ignore=["Tiling", "Custom key", "Empty", "Spaced", "Leading quote"])
    assert (kwargs["sampler"], kwargs["schedule"], kwargs["steps"], kwargs["cfg"]) == (
        "DPM++ 2M SDE",
        "Exponential",
        20,
        6.5,
    )
    assert (kwargs["seeds"], kwargs["size"], kwargs["rng"], kwargs["clip_skip"]) == (
        [4294967295],
        (1024, 576),
        "CPU",
        1,
    )
    assert (kwargs["sigma_min"], kwargs["sigma_max"], kwargs["rho"]) == (0.0292, 14.6146, 7.0)
    assert kwargs["always_discard_penultimate"] is True and kwargs["eta"] == 1.0
    assert kwargs["seed_resize_from"] == REPRESENTATIVE["Seed resize from"]
    assert kwargs["prompt"] == REPRESENTATIVE["prompt"] and kwargs["negative_prompt"] == "blurry\nextra limbs"
