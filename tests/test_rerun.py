"""Re-running an image from its PNG or infotext (sdlab.rerun) and `sdlab generate --from` on the embedded model."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from sdlab.cli import main
from sdlab.errors import SdlabError
from sdlab.generation import generate
from sdlab.infotext import format_infotext, read_png
from sdlab.rerun import read_run, rerun

pytestmark = pytest.mark.usefixtures("one_thread")

RUN = dict(
    prompt="a (red:1.2) fox in the [snow]",
    negative_prompt="blurry",
    sampler="Euler a",
    schedule="Karras",
    steps=5,
    cfg=5.0,
    seeds=[3407],
    rng="CPU",
    ensd=31337,
    eta=0.7,
)


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """One image of the embedded model, saved as sdlab saves it (A1111 infotext + sdlab spec)."""
    result = generate(**RUN)
    (path,) = result.save(tmp_path_factory.mktemp("original"))
    return result, path


def _same(a, b):
    assert torch.equal(a.images, b.images) and torch.equal(a.latents, b.latents)


def test_an_sdlab_png_reruns_bit_for_bit(original):
    result, path = original
    kwargs = read_run(path)
    assert kwargs["seeds"] == [3407] and kwargs["sampler"] == "Euler a" and kwargs["eta"] == 0.7
    again = generate(**kwargs)
    _same(again, result)
    assert again.specs[0].key() == result.specs[0].key()
    _same(rerun(str(path)), result)


def test_the_a1111_infotext_alone_reruns_the_same_image(original, tmp_path):
    result, path = original
    infotext, _ = read_png(path)
    plain = tmp_path / "a1111.png"
    Image.open(path).save(plain, pnginfo=_text_chunk(infotext))  # as A1111 writes it: no sdlab chunk
    assert read_png(plain)[1] is None
    kwargs = read_run(plain)
    assert {k: kwargs[k] for k in ("prompt", "negative_prompt", "steps", "cfg", "rng", "ensd", "eta")} == {
        k: RUN[k] for k in ("prompt", "negative_prompt", "steps", "cfg", "rng", "ensd", "eta")
    }
    _same(generate(**kwargs), result)
    _same(generate(**read_run(infotext)), result)  # the text itself


def _text_chunk(text):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", text)
    return info


VARIATION = dict(prompt="two red circles", sampler="DPM++ 2M", steps=4, cfg=5.0, seeds=[6], subseeds=[78],
                 subseed_strength=0.3, seed_resize_from=(48, 64), always_discard_penultimate=True)  # fmt: skip


def test_variation_seeds_seed_resize_and_discard_penultimate_rerun_from_the_png_and_the_infotext(tmp_path):
    result = generate(**VARIATION)
    plain = generate(**{**VARIATION, "subseed_strength": 0.0, "seed_resize_from": None})
    assert not torch.equal(result.latents, plain.latents)  # the variation seed and the resize changed the images
    spec = result.specs[0]
    assert (spec.subseed, spec.subseed_strength, spec.seed_resize_from, spec.always_discard_penultimate) == (
        78, 0.3, (48, 64), True)  # fmt: skip
    assert spec.key() != plain.specs[0].key()
    (path,) = result.save(tmp_path / "png")
    infotext, _ = read_png(path)
    assert "Variation seed: 78, Variation seed strength: 0.3" in infotext and "Seed resize from: 48x64" in infotext
    for source in (path, infotext):  # sdlab's own spec, then A1111's text alone
        kwargs = read_run(source)
        assert (kwargs["seeds"], kwargs["subseeds"], kwargs["subseed_strength"]) == ([6], [78], 0.3)
        assert kwargs["seed_resize_from"] == (48, 64) and kwargs["always_discard_penultimate"] is True
        again = generate(**kwargs)
        _same(again, result)


def test_a_full_variation_strength_is_the_variation_seed_itself():
    run = dict(prompt="two red circles", sampler="Euler", steps=3, cfg=5.0)
    full = generate(**run, seeds=[5], subseeds=[77], subseed_strength=1.0)
    assert torch.allclose(full.latents, generate(**run, seeds=[77]).latents, atol=1e-4)  # A1111's slerp at 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(seeds=[1, 2], subseeds=[3], subseed_strength=0.5), "one subseed per seed"),
        (dict(seeds=[1], subseed_strength=0.5), "subseeds is None"),
        (dict(seeds=[1], subseeds=[3], subseed_strength=1.5), r"\[0, 1\]"),
        (dict(seeds=[1], seed_resize_from=(4, 4)), "below 8 pixels"),
        (
            dict(seeds=[1], subseeds=[3], subseed_strength=0.5, sampler="diffusers:EulerDiscreteScheduler"),
            "draws its own noise",
        ),
    ],
)
def test_bad_variation_settings_are_refused_before_any_model_work(kwargs, message):
    with pytest.raises(SdlabError, match=message):
        generate("a cat", steps=2, model="no/such/model", **kwargs)  # refused before the model is looked up


def test_a_spec_written_by_sdlab_0_1_keeps_its_key():
    """Fields added since (variation seed, seed resize, discard penultimate) count only away from their
    defaults: this spec and key were written by sdlab 0.1 (commit 57ff0b6), before those fields existed."""
    from sdlab.spec import RunSpec

    old = {"add_noise": True, "cfg": 6.5, "clip_skip": 1, "device": "cpu", "dtype": "float32", "end_step": None,
           "ensd": 31337, "height": 64, "model": "embedded", "model_hash": "", "negative_prompt": "",
           "prompt": "a red fox", "return_leftover_noise": False, "rho": None, "rng": "GPU", "sampler": "Euler a",
           "sampler_key": "euler_ancestral", "sampler_options": {"eta": 0.7}, "schedule": "Karras",
           "schedule_resolved": "karras", "seed": 7, "sigma_max": None, "sigma_min": None, "start_step": 0,
           "steps": 12, "versions": {"sdlab": "0.1.0", "torch": "2.14.1"}, "width": 64}  # fmt: skip
    spec = RunSpec.from_dict(old)
    assert spec.key() == "85d11990096959d80882a2d368cf5faa8b03da9af9569008d5caee1abaf5b2f4"
    assert RunSpec.from_dict({**old, "subseed": 3, "subseed_strength": 0.2}).key() != spec.key()


def test_overrides_change_one_thing(original):
    _, path = original
    kwargs = read_run(path, sampler="Euler", steps=3)
    assert kwargs["sampler"] == "Euler" and kwargs["steps"] == 3
    assert "eta" not in kwargs  # Euler a's eta went with it
    assert kwargs["seeds"] == [3407] and kwargs["prompt"] == RUN["prompt"]
    assert read_run(path, sampler="Euler a", s_noise=0.9)["eta"] == 0.7  # same sampler: its options stay


def test_cli_generate_from_reruns_and_overrides(original, tmp_path, capsys):
    result, path = original
    assert main(["generate", "--from", str(path), "--out", str(tmp_path / "same"), "--quiet"]) == 0
    (written,) = capsys.readouterr().out.split()
    assert written.endswith(path.name)  # same spec, same name
    assert Image.open(written).tobytes() == Image.open(path).tobytes()
    assert main(["generate", "--from", str(path), "--sampler", "Euler", "--steps", "3", "--out", str(tmp_path / "o"),
                 "--quiet"]) == 0  # fmt: skip
    (changed,) = capsys.readouterr().out.split()
    _, spec = read_png(changed)
    assert (spec["sampler"], spec["steps"], spec["seed"], spec["ensd"]) == ("Euler", 3, 3407, 31337)
    assert main(["generate", "--from", str(path), "--subseed", "9", "--subseed-strength", "0.25", "--out",
                 str(tmp_path / "v"), "--quiet"]) == 0  # fmt: skip
    (varied,) = capsys.readouterr().out.split()
    _, spec = read_png(varied)
    assert (spec["seed"], spec["subseed"], spec["subseed_strength"]) == (3407, 9, 0.25)
    assert main(["generate", "--out", str(tmp_path / "x")]) == 2  # neither --prompt nor --from
    assert "--prompt" in capsys.readouterr().err


FULL = (
    "a (very beautiful:1.3) cat, [blurry]\n"
    "Negative prompt: lowres\n"
    "Steps: 12, Sampler: DPM++ 2M SDE, Schedule type: Exponential, CFG scale: 6.5, Seed: 99, Size: 512x768, "
    "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Clip skip: 2, ENSD: 31337, RNG: NV, "
    "Schedule min sigma: 0.05, Schedule max sigma: 12.5, Schedule rho: 5, Eta: 0.5, Variation seed strength: 0, "
    "Version: v1.10.1"
)


def test_an_a1111_infotext_maps_every_field_generate_runs():
    assert read_run(FULL) == {
        "prompt": "a (very beautiful:1.3) cat, [blurry]",
        "negative_prompt": "lowres",
        "sampler": "DPM++ 2M SDE",
        "schedule": "Exponential",
        "steps": 12,
        "cfg": 6.5,
        "seeds": [99],
        "size": (512, 768),
        "clip_skip": 2,
        "rng": "NV",
        "ensd": 31337,
        "sigma_min": 0.05,
        "sigma_max": 12.5,
        "rho": 5.0,
        "eta": 0.5,
    }
    legacy = read_run("a cat\nSteps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1, Size: 64x64")
    assert (legacy["sampler"], legacy["schedule"]) == ("DPM++ 2M", "Karras")
    ddim = read_run("a cat\nSteps: 20, Sampler: DDIM, CFG scale: 7, Seed: 1, Size: 64x64, Eta DDIM: 0.3")
    assert ddim["eta"] == 0.3


BASE = "a cat\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 512x512"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (BASE + ", Denoising strength: 0.5, Hires upscale: 2", "Denoising strength"),
        (BASE + ", Hires upscale: 2, Hires steps: 10", "Hires upscale"),
        (BASE + ", Denoising strength: 0.75, Init image hash: abc", "Denoising strength"),
        (BASE + ", Refiner: sd_xl_refiner_1.0, Refiner switch at: 0.8", "Refiner"),
        ("a cat <lora:fox_v2:0.8>\nSteps: 20, Sampler: Euler, Seed: 1, Size: 512x512", "prompt"),
        (BASE + ', Lora hashes: "fox_v2: 0a1b"', "Lora hashes"),
        (BASE + ", ADetailer model: face_yolov8n.pt", "ADetailer model"),
        (BASE + ", Variation seed strength: 0.3", "Variation seed strength"),  # a strength without its seed
        (BASE + ", Face restoration: CodeFormer", "Face restoration"),
        (BASE + ", Emphasis: No norm", "Emphasis"),
        (BASE + ", Tiling: True", "Tiling"),
        (BASE + ", VAE: vae-ft-mse-840000-ema-pruned.safetensors", "VAE"),
    ],
)
def test_what_generate_does_not_run_is_refused_naming_the_field(text, field):
    with pytest.raises(SdlabError) as info:
        read_run(text)
    assert f"field={field!r}" in str(info.value)


def test_ignore_runs_without_a_field():
    kwargs = read_run(BASE + ", ADetailer model: face_yolov8n.pt, ADetailer confidence: 0.3",
                      ignore=["ADetailer model", "ADetailer confidence"])  # fmt: skip
    assert kwargs["sampler"] == "Euler" and "ADetailer model" not in kwargs
    assert read_run(BASE + ", Variation seed: 5, Variation seed strength: 0")["seeds"] == [1]  # strength 0: no-op


def test_bad_sources(tmp_path):
    with pytest.raises(SdlabError, match="no Seed"):
        read_run("a cat\nSteps: 20, Sampler: Euler, CFG scale: 7")
    with pytest.raises(SdlabError, match="PNG path, an infotext or a params dict"):
        read_run(42)
    blank = tmp_path / "blank.png"
    Image.new("RGB", (8, 8)).save(blank)
    with pytest.raises(SdlabError, match="no parameters"):
        read_run(blank)
    text = tmp_path / "params.txt"
    text.write_text(format_infotext({"prompt": "a cat", "Steps": 4, "Sampler": "Euler", "Seed": 2}), encoding="utf-8")
    assert read_run(text)["steps"] == 4


def test_rerun_needs_the_model_an_image_names():
    text = BASE + ", Model hash: 6ce0161689, Model: v1-5-pruned-emaonly"
    with pytest.raises(SdlabError, match="model='v1-5-pruned-emaonly'"):
        rerun(text)
    assert "model" not in read_run(text)  # read_run leaves the model to the caller
