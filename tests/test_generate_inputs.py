"""sdlab.generate refuses bad input with one SdlabError before any model work (issue #14, defects 6, 9 and 12):
wrong types and domains, sizes over the limit, unusable devices; and GenerateResult.save never overwrites."""

import dataclasses
import errno
import math
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import sdlab
from sdlab import SdlabError, generation
from sdlab.models.loading import SDModel
from sdlab.noise import rng as rng_mod

pytestmark = pytest.mark.usefixtures("one_thread")


def gen(model, **kw):
    kw.setdefault("prompt", "a red cat")
    kw.setdefault("steps", 3)
    kw.setdefault("cfg", 5.0)
    kw.setdefault("size", (32, 32))
    return sdlab.generate(kw.pop("prompt"), model=model, **kw)


@pytest.fixture
def no_model_work(monkeypatch, tmp_path):
    """Any model work (loading, noise, the text encoder, the UNet, the VAE) fails the test; returns the loads made.

    The test runs in an empty folder that must stay empty."""
    loads = []
    load = generation.load

    def spy(*args, **kwargs):
        loads.append((args, kwargs))
        return load(*args, **kwargs)

    def forbidden(*args, **kwargs):
        raise AssertionError("model work began before the input was checked")

    monkeypatch.setattr(generation, "load", spy)
    for name in ("encode_prompt", "denoiser", "decode"):
        monkeypatch.setattr(SDModel, name, forbidden)
    monkeypatch.setattr(rng_mod.ImageRNG, "first", forbidden)
    monkeypatch.chdir(tmp_path)
    yield loads
    assert list(tmp_path.iterdir()) == []  # nothing written


# checks that need nothing but the arguments: they come before the model is loaded
CHEAP = {
    "size one number": ({"size": (64,)}, "size"),
    "size three numbers": ({"size": (64, 64, 64)}, "size"),
    "size not WxH": ({"size": "abc"}, "WIDTHxHEIGHT"),
    "size float": ({"size": (64.5, 64)}, "whole numbers"),
    "size bool": ({"size": (True, 64)}, "whole numbers"),
    "size int": ({"size": 64}, "size"),
    "size not a multiple of 8": ({"size": (36, 32)}, "multiples of 8"),
    "size bytes": ({"size": b"64x64"}, "size"),
    "prompt None": ({"prompt": None}, "prompt must be a string"),
    "prompt int": ({"prompt": 123}, "prompt must be a string"),
    "prompt list of int": ({"prompt": [1]}, "every prompt must be a string"),
    "negative_prompt None": ({"negative_prompt": None}, "negative_prompt must be a string"),
    "schedule None": ({"schedule": None}, "schedule"),
    "sampler None": ({"sampler": None}, "sampler"),
    "batch_size -1": ({"batch_size": -1}, "batch_size"),
    "batch_size 0": ({"batch_size": 0}, "batch_size"),
    "batch_size float": ({"batch_size": 1.0}, "batch_size"),
    "device meta": ({"model": None, "device": "meta"}, "meta device"),
    "device nonsense": ({"model": None, "device": "nonsense"}, "device"),
    "dtype nonsense": ({"model": None, "dtype": "float8"}, "dtype"),
    "latents list": ({"latents": [[0.0]]}, "latents"),
    "latents array": ({"latents": np.zeros((1, 4, 4, 4), np.float32)}, "latents"),
    "latents int tensor": ({"latents": torch.zeros(1, 4, 4, 4, dtype=torch.int64)}, "latents"),
    "seeds string": ({"seeds": "abc"}, "seeds must be an int or a list"),
    "seeds None": ({"seeds": None}, "seeds must be an int or a list"),
    "seed bool": ({"seeds": [True]}, "seed must be an int"),
    "seed True": ({"seeds": True}, "seed must be an int"),
    "seed float": ({"seeds": [1.0]}, "seed must be an int"),
    "seed negative": ({"seeds": [-5]}, "seed out of range"),
    "seed over 32 bits": ({"seeds": [2**32]}, "seed out of range"),
    "seeds empty": ({"seeds": []}, "seed"),
    "steps float": ({"steps": 3.0}, "steps"),
    "steps bool": ({"steps": True}, "steps"),
    "cfg str": ({"cfg": "7"}, "CFG"),
    "cfg bool": ({"cfg": True}, "CFG"),
    "cfg nan": ({"cfg": math.nan}, "CFG"),
    "rng unknown": ({"rng": "abc"}, "RNG source"),
    "rng unknown for diffusers": ({"rng": "abc", "sampler": "diffusers:EulerDiscreteScheduler"}, "RNG source"),
    "ensd str": ({"ensd": "1"}, "ensd"),
    "ensd float": ({"ensd": 1.0}, "ensd"),
    "ensd below 0": ({"seeds": [1], "ensd": -2}, "ensd"),
    "clip_skip 0": ({"clip_skip": 0}, "clip_skip"),
    "clip_skip negative": ({"clip_skip": -1}, "clip_skip"),
    "clip_skip float": ({"clip_skip": 2.0}, "clip_skip"),
    "clip_skip bool": ({"clip_skip": True}, "clip_skip"),
    "start_step str": ({"start_step": "1"}, "start_step"),
    "start_step negative": ({"start_step": -1}, "start_step"),
    "end_step float": ({"end_step": 2.0}, "end_step"),
    "trajectory str": ({"trajectory": "yes"}, "trajectory"),
    "decode str": ({"decode": "no"}, "decode"),
    "add_noise int": ({"add_noise": 0, "latents": torch.zeros(1, 4, 4, 4)}, "add_noise"),
    "return_leftover_noise None": ({"return_leftover_noise": None}, "return_leftover_noise"),
    "add_noise False without latents": ({"add_noise": False}, "latents"),
}


@pytest.mark.parametrize(("kw", "match"), list(CHEAP.values()), ids=list(CHEAP))
def test_bad_argument_is_refused_before_loading_the_model(tiny, no_model_work, kw, match):
    kw = {"model": tiny, **kw}
    with pytest.raises(SdlabError, match=match):
        gen(**kw)
    assert no_model_work == []


# checks that need the loaded model: right after loading, before any noise or network
NEED_MODEL = {
    "model int": ({"model": 123}, "model must be"),
    "model without the interface": ({"model": SimpleNamespace(device="cpu", dtype=torch.float32)}, "latent_shape"),
    "device cuda for a CPU model": ({"device": "cuda"}, "(CUDA is not available|loaded on cpu)"),
    "dtype other than the model's": ({"dtype": "float16"}, "loaded in float32"),
    "latents of another size": ({"latents": torch.zeros(1, 4, 8, 8)}, "latents must have one"),
    "latents for fewer seeds": ({"seeds": [1, 2], "latents": torch.zeros(1, 4, 4, 4)}, "latents must have one"),
    "latents one image": ({"latents": torch.zeros(4, 4, 4)}, "latents must have one"),
    "clip_skip over the layers": ({"clip_skip": 1000}, "clip_skip exceeds"),
}


@pytest.mark.parametrize(("kw", "match"), list(NEED_MODEL.values()), ids=list(NEED_MODEL))
def test_bad_argument_for_the_model_is_refused_before_any_model_work(tiny, no_model_work, kw, match):
    kw = {"model": tiny, **kw}
    with pytest.raises(SdlabError, match=match):
        gen(**kw)


def test_unusable_devices_are_refused():
    from sdlab.models.loading import resolve_device

    assert resolve_device("cpu") == (torch.device("cpu"), torch.float32)
    with pytest.raises(SdlabError, match="meta"):
        resolve_device("meta")
    with pytest.raises(SdlabError, match="not available"):
        resolve_device("xpu" if not (hasattr(torch, "xpu") and torch.xpu.is_available()) else "meta")
    if not torch.cuda.is_available():
        with pytest.raises(SdlabError, match="CUDA"):
            resolve_device("cuda:0")
    else:
        with pytest.raises(SdlabError, match="no CUDA device"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_valid_odd_spellings_still_work(tiny):
    """The model's own device and dtype, NumPy ints, "WxH" and a lone seed: the same run as the plain spelling."""
    plain = gen(tiny, seeds=[3], size=(32, 32), clip_skip=2)
    odd = gen(tiny, seeds=np.int64(3), size="32x32", clip_skip=np.int64(2), device="cpu", dtype="float32")
    assert torch.equal(plain.latents, odd.latents) and torch.equal(plain.images, odd.images)
    assert plain.specs == odd.specs


# --- the size bound (defect 6) ----------------------------------------------------------------------------------


def test_huge_size_is_refused_without_allocating(tiny, no_model_work, monkeypatch):
    monkeypatch.delenv("SDLAB_MAX_PIXELS", raising=False)
    with pytest.raises(SdlabError, match="over the limit") as info:
        gen(tiny, size=(100000, 100000))
    assert "SDLAB_MAX_PIXELS" in str(info.value)


def test_the_pixel_limit_follows_the_environment(tiny, no_model_work, monkeypatch):
    monkeypatch.setenv("SDLAB_MAX_PIXELS", str(32 * 32 - 1))
    with pytest.raises(SdlabError, match="over the limit of 1,023"):
        gen(tiny, size=(32, 32))
    # raised past the size, the limit lets it through to the memory check, which refuses what cannot fit
    monkeypatch.setenv("SDLAB_MAX_PIXELS", str(10**12))
    with pytest.raises(SdlabError, match="GiB"):
        gen(tiny, size=(800_000, 800_000))


def test_a_size_at_the_limit_runs(tiny, monkeypatch):
    monkeypatch.setenv("SDLAB_MAX_PIXELS", str(32 * 32))
    assert gen(tiny, size=(32, 32)).images.shape == (1, 3, 32, 32)


# --- saving (defect 12) -----------------------------------------------------------------------------------------


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_same_seed_twice_saves_two_files(tiny, tmp_path):
    from sdlab.infotext import read_png

    r = gen(tiny, seeds=[5, 5])
    assert r.specs[0].key() == r.specs[1].key()
    paths = r.save(tmp_path)
    assert len(set(paths)) == 2 and all(p.is_file() for p in paths)
    assert [read_png(p)[1] for p in paths] == [s.to_dict() for s in r.specs]
    assert paths[1].name == paths[0].name.removesuffix(".png") + "-2.png"
    assert r.save(tmp_path) == paths and len(_files(tmp_path)) == 2  # saving again changes nothing


def test_same_seed_with_different_prompts_keeps_plain_names(tiny, tmp_path):
    r = gen(tiny, prompt=["a red cat", "a blue dog"], seeds=[5, 5])
    paths = r.save(tmp_path)
    assert len(set(paths)) == 2 and not any(p.stem.endswith("-2") for p in paths)


def test_save_never_overwrites_a_different_image(tiny, tmp_path):
    r = gen(tiny, seeds=[5])
    (first,) = r.save(tmp_path)
    before = first.read_bytes()
    other = dataclasses.replace(r, images=1 - r.images)  # equal spec, other pixels (given latents can do this)
    (second,) = other.save(tmp_path)
    assert second != first and first.read_bytes() == before and second.name.endswith("-2.png")
    assert other.save(tmp_path) == [second] and len(_files(tmp_path)) == 2


def test_save_into_a_file_is_an_sdlab_error(tiny, tmp_path):
    r = gen(tiny, seeds=[5])
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    for out in (blocker, blocker / "sub"):
        with pytest.raises(SdlabError, match="cannot save") as info:
            r.save(out)
        assert str(out) in str(info.value)
    assert _files(tmp_path) == ["not-a-folder"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_save_into_a_read_only_folder_is_an_sdlab_error(tiny, tmp_path):
    r = gen(tiny, seeds=[5])
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(SdlabError, match="cannot save"):
            r.save(tmp_path)
    finally:
        tmp_path.chmod(0o700)
    assert _files(tmp_path) == []


def test_a_full_disk_leaves_no_half_written_file(tiny, tmp_path, monkeypatch):
    from PIL import Image

    r = gen(tiny, seeds=[5, 6])
    save = Image.Image.save
    calls = []

    def fill_the_disk(self, fp, *args, **kwargs):
        calls.append(fp)
        if len(calls) == 1:
            return save(self, fp, *args, **kwargs)
        fp.write(b"\x89PNG\r\n\x1a\n half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", fill_the_disk)
    with pytest.raises(SdlabError, match="No space left") as info:
        r.save(tmp_path)
    assert f"{r.specs[1].seed}-{r.specs[1].key()[:12]}.png" in str(info.value)
    (kept,) = tmp_path.iterdir()  # the first image, complete; nothing of the second, no temporary file
    monkeypatch.setattr(Image.Image, "save", save)
    assert kept.name.startswith("5-") and kept.read_bytes() == _png_bytes(r, 0, tmp_path / "again")


def _png_bytes(result, k, folder):
    return result.save(folder)[k].read_bytes()


def test_save_without_hard_links_still_never_overwrites(tiny, tmp_path, monkeypatch):
    def no_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted", str(src))

    monkeypatch.setattr(os, "link", no_links)
    r = gen(tiny, seeds=[5, 5])
    paths = r.save(tmp_path)
    assert len(set(paths)) == 2 and r.save(tmp_path) == paths
    other = dataclasses.replace(r, images=1 - r.images)
    assert set(other.save(tmp_path)).isdisjoint(paths) and len(_files(tmp_path)) == 4
