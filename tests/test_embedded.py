"""The embedded model: procedural data, tokenizer, training smoke run, checksums, evaluation."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from sdlab.embedded import WEIGHTS_DIR, pipeline_dir, verify_folder
from sdlab.embedded.training.dataset import HELDOUT_PAIRS, make_dataset, make_scene, scene_seeds
from sdlab.embedded.vocabulary import COLOURS, KINDS, SKY_PHRASES, caption_vocabulary
from sdlab.errors import SdlabError

SHIPPED = (WEIGHTS_DIR / "mini-sd" / "checksums.json").is_file()


def test_scenes_are_deterministic_by_seed() -> None:
    a, b, c = make_scene(123), make_scene(123), make_scene(124)
    assert a[0].dtype == np.uint8 and a[0].shape == (64, 64, 3)
    assert np.array_equal(a[0], b[0]) and a[1] == b[1] and a[2] == b[2]
    assert not np.array_equal(a[0], c[0])
    images, captions, attrs = make_dataset(6, "heldout", seed=3)
    assert np.array_equal(images[2], make_scene(attrs[2]["seed"])[0]) and captions[2] == make_scene(attrs[2]["seed"])[1]


def test_captions_agree_with_attributes_and_pixels() -> None:
    images, captions, attrs = make_dataset(60, "train", seed=1)
    yy, xx = np.mgrid[0:64, 0:64]
    for image, caption, a in zip(images, captions, attrs, strict=True):
        subject, sky, ground = caption.rsplit(", ", 2)
        assert sky == SKY_PHRASES[a["sky"]] and ground == f"on {a['ground']}"
        assert a["n_objects"] == len(a["objects"]) in (1, 2, 3)
        if a["count_mode"]:
            assert subject.split()[0] == {2: "two", 3: "three"}[a["n_objects"]]
        else:
            articles = sum(w in ("a", "an") for w in subject.split())
            assert articles == a["n_objects"]
        for o in a["objects"]:
            assert o["colour"] in subject and o["kind"] in subject
            # the named colour is in the image, around a point inside the object (stripes blend at 64x64)
            x, y, r = o["x"], o["y"], o["r"]
            x, y = {"house": (x - 0.45 * r, y + 0.5 * r), "tree": (x, y - 0.3 * r)}.get(o["kind"], (x, y))
            near = (xx + 0.5 - x) ** 2 + (yy + 0.5 - y) ** 2 <= (0.3 * r) ** 2
            pixels = image[near].astype(float)
            if o["texture"] == "striped":
                assert np.linalg.norm(pixels - COLOURS[o["colour"]], axis=1).min() < 60, (caption, o)
            else:
                median = np.median(pixels, axis=0)
                assert min(COLOURS, key=lambda c: np.linalg.norm(median - COLOURS[c])) == o["colour"], caption
        if a["relation"]:
            assert f" {a['relation']} " in subject


def test_heldout_split_is_disjoint_and_holds_the_heldout_pairs() -> None:
    train, heldout = set(scene_seeds(500, "train")), set(scene_seeds(500, "heldout"))
    assert not train & heldout
    _, _, train_attrs = make_dataset(400, "train", seed=2)
    _, _, held_attrs = make_dataset(400, "heldout", seed=2)
    pairs = lambda attrs: {(o["colour"], o["kind"]) for a in attrs for o in a["objects"]}  # noqa: E731
    assert not pairs(train_attrs) & HELDOUT_PAIRS
    assert pairs(held_attrs) & HELDOUT_PAIRS
    with pytest.raises(SdlabError, match="split"):
        make_dataset(2, "tran")


def test_tokenizer_holds_caption_words_whole_and_splits_unknown_words() -> None:
    from sdlab.embedded.arch import build_tokenizer

    tok = build_tokenizer()
    for word in caption_vocabulary():
        assert len(tok(word, add_special_tokens=False).input_ids) == 1, word
    assert {"circle", "purple", "striped"} <= set(caption_vocabulary()) and set(KINDS) <= set(caption_vocabulary())
    ids = tok("a zebra-striped Ünicorn", add_special_tokens=False).input_ids
    assert len(ids) > 4 and tok.unk_token_id not in ids[:-1]
    assert tok.decode(ids).replace(" ", "") == "azebra-stripedünicorn"


def test_classifier_targets_give_every_object_a_cell() -> None:
    from sdlab.embedded.training.classifier import attribute_targets

    _, _, attrs = make_dataset(40, "classifier", seed=0)
    t = attribute_targets(attrs)
    for i, a in enumerate(attrs):
        owned = {(int(c), int(k)) for c, k in zip(t["colour"][i].ravel(), t["kind"][i].ravel(), strict=True)}
        named = {(list(COLOURS).index(o["colour"]), KINDS.index(o["kind"])) for o in a["objects"]}
        assert named <= owned and t["count"][i] == a["n_objects"] - 1


@pytest.fixture(scope="module")
def fast_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A --fast training run (tiny models, 2 steps per stage) in a temporary folder."""
    from sdlab.embedded.training.train import TrainConfig, train

    root = tmp_path_factory.mktemp("embedded")
    log = train(root / "work", TrainConfig(fast=True), out_dir=root / "out", progress=False)
    assert log["stages"]["unet"]["steps"] == 2
    return root / "out"


def test_fast_training_writes_a_loadable_pipeline(fast_weights: Path) -> None:
    import torch
    from diffusers import StableDiffusionPipeline

    folder = pipeline_dir(fast_weights / "mini-sd")
    assert (folder / "sdlab_preview.json").is_file() and (folder / "tokenizer" / "vocab.json").is_file()
    pipe = StableDiffusionPipeline.from_pretrained(str(folder), torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    out = pipe("a red circle, day sky, on grass", num_inference_steps=2, height=64, width=64, output_type="np")
    assert out.images.shape == (1, 64, 64, 3) and np.isfinite(out.images).all()
    assert pipe.scheduler.config.beta_schedule == "scaled_linear" and pipe.scheduler.config.beta_end == 0.012


def test_continued_training_keeps_the_vae_and_classifier(fast_weights: Path, tmp_path: Path) -> None:
    """``init_from`` + ``clf_steps=0`` (how the shipped UNet was trained further): only the UNet and text
    encoder move; min-SNR weighting gives finite losses."""
    from safetensors.torch import load_file

    from sdlab.embedded.training.train import TrainConfig, train

    cfg = TrainConfig(fast=True, init_from=str(fast_weights), snr_gamma=5.0, clf_steps=0, unet_steps=3)
    log = train(tmp_path / "work", cfg, out_dir=tmp_path / "out", progress=False)
    assert log["stages"]["vae"]["steps"] == 0 and log["stages"]["classifier"]["steps"] == 0
    assert log["stages"]["unet"]["steps"] == 3 and all(np.isfinite(v) for _, v in log["stages"]["unet"]["losses"])

    def weights(root: Path, part: str) -> dict:
        folder = root / "classifier" if part == "classifier" else root / "mini-sd" / part
        return load_file(str(next(folder.glob("*.safetensors"))))

    for part, same in (("vae", True), ("classifier", True), ("unet", False)):
        a, b = weights(fast_weights, part), weights(tmp_path / "out", part)
        assert all(a[k].equal(b[k]) for k in a) == same, part


def test_checksums_reject_corrupt_truncated_and_missing_files(fast_weights: Path, tmp_path: Path) -> None:
    source = WEIGHTS_DIR / "mini-sd" if SHIPPED else fast_weights / "mini-sd"
    copy = tmp_path / "mini-sd"
    shutil.copytree(source, copy)
    verify_folder(copy)
    target = copy / "unet" / "diffusion_pytorch_model.safetensors"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(SdlabError, match="diffusion_pytorch_model.safetensors") as err:
        pipeline_dir(copy)
    assert "retrain" in str(err.value)
    target.write_bytes(bytes(data[:100]))  # truncated
    with pytest.raises(SdlabError, match="corrupt or truncated"):
        verify_folder(copy)
    target.unlink()
    with pytest.raises(SdlabError, match="missing"):
        verify_folder(copy)


@pytest.mark.skipif(not SHIPPED, reason="no shipped weights")
def test_small_evaluation_runs_on_the_shipped_model() -> None:
    from sdlab.embedded.training.evaluate import diffusers_generate_fn, evaluate_model, format_table

    r = evaluate_model(4, generate_fn=diffusers_generate_fn(), progress=False, diversity_seeds=3, diversity_steps=4)
    for key in ("vae_psnr_db", "adherence", "adherence_cfg1", "diversity_ratio", "adherence_real"):
        assert np.isfinite(r[key]), key
    assert 0 <= r["adherence"] <= 1 and r["vae_psnr_db"] > 15 and r["adherence_real"] > 0.5
    assert 0 <= r["adherence_objects"] <= 1 and 0 <= r["adherence_cfg1_objects"] <= 1
    assert r["adherence_real_objects"] > 0.5
    assert r["samples"]["adherence"].shape == (4, 3, 64, 64)
    assert "adherence" in format_table(r)


@pytest.mark.skipif(not SHIPPED, reason="no shipped weights")
def test_eval_model_cli_prints_json_and_saves_the_sample_grid(tmp_path, monkeypatch, capsys) -> None:
    import json

    from PIL import Image

    import sdlab.embedded.training.evaluate as ev
    from sdlab.cli import main

    real = ev.evaluate_model
    seen = {}

    def small(n, *, seed, progress, folder):  # the CLI's call, made cheap: fewer seeds and diversity steps
        seen["folder"], seen["seed"] = folder, seed
        return real(n, seed=seed, progress=progress, folder=folder, diversity_seeds=2, diversity_steps=3)

    monkeypatch.setattr(ev, "evaluate_model", small)
    grid = tmp_path / "grid.png"
    folder = str(pipeline_dir())
    argv = ["eval-model", "--n", "2", "--seed", "3", "--json", "--quiet", "--model", folder, "--grid", str(grid)]
    assert main(argv) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert seen["folder"] == folder and seen["seed"] == 3 and metrics["seed"] == 3 and "samples" not in metrics
    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging

    quiet = not diffusers_logging.is_progress_bar_enabled() and not transformers_logging.is_progress_bar_enabled()
    diffusers_logging.enable_progress_bar()  # global state: restore it for the other tests
    transformers_logging.enable_progress_bar()
    assert quiet  # --quiet silences the libraries' loading bars too
    assert set(metrics) >= {"vae_psnr_db", "adherence", "adherence_cfg1", "diversity_ratio"}
    with Image.open(grid) as im:  # 2 captions x (CFG 5, CFG 1), 64 px cells enlarged twice, plus labels
        assert im.width > 2 * 128 and im.height > 2 * 128


@pytest.mark.skipif(not SHIPPED, reason="no shipped weights")
def test_relation_probe_swaps_one_word_and_reports_both_prompts(capsys) -> None:
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "probe_relations.py"
    spec = importlib.util.spec_from_file_location("probe_relations", path)
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    assert probe.holds("above", (10, 5), (10, 40)) and not probe.holds("below", (10, 5), (10, 40))
    assert probe.holds("left of", (3, 30), (50, 30)) and not probe.holds("right of", (3, 30), (50, 30))
    assert all(probe.OPPOSITE[probe.OPPOSITE[r]] == r for r in probe.OPPOSITE)
    assert probe.on_axis("below", (10, 5), (12, 40)) and not probe.on_axis("left of", (10, 5), (12, 40))
    assert probe.main(["--n", "2", "--cfg", "5"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 5 |")]
    assert [r.split("|")[2].strip() for r in rows] == ["as written", "relation swapped"]
    for row in rows:  # both objects found in at most the 2 images, and right at most that often
        both, right = row.split("|")[3].split("/")[0], row.split("|")[4]
        assert 0 <= int(right) <= int(both) <= 2


def test_adherence_pools_checks_and_can_leave_the_scene_attributes_out() -> None:
    from sdlab.embedded.training.evaluate import SCENE_ATTRIBUTES, _adherence

    checks = [
        {"sky": [True], "ground": [True], "count": [False], "object": [True, False], "relation": []},
        {"sky": [True], "ground": [False], "count": [True], "object": [True], "relation": [False]},
    ]
    overall, per = _adherence(checks)  # 6 of 10 checks pass
    assert overall == 0.6 and per == {"sky": 1.0, "ground": 0.5, "count": 0.5, "object": 2 / 3, "relation": 0.0}
    objects, per_objects = _adherence(checks, skip=SCENE_ATTRIBUTES)  # 3 of 6
    assert objects == 0.5 and set(per_objects) == {"count", "object", "relation"}


@pytest.mark.parametrize(
    ("old", "name", "new"),
    [
        ("sdlab.embedded.dataset", "make_scene", "sdlab.embedded.training.dataset"),
        ("sdlab.embedded.dataset", "caption_vocabulary", "sdlab.embedded.vocabulary"),
        ("sdlab.embedded.train", "TrainConfig", "sdlab.embedded.training.train"),
        ("sdlab.embedded.classifier", "load_classifier", "sdlab.embedded.training.classifier"),
        ("sdlab.embedded.evaluate", "evaluate_model", "sdlab.embedded.training.evaluate"),
        ("sdlab.embedded.tiny_decoder", "TinyDecoderConfig", "sdlab.embedded.training.tiny_decoder"),
        ("sdlab.embedded.tiny_decoder", "build_tiny_vae", "sdlab.embedded.arch"),
    ],
)
def test_old_embedded_paths_forward_with_a_deprecation_warning(old, name, new) -> None:
    import importlib

    with pytest.warns(DeprecationWarning, match="sdlab.embedded.training"):
        value = getattr(importlib.import_module(old), name)
    assert value is getattr(importlib.import_module(new), name)


def test_sample_rows_pairs_each_caption_with_its_cfg5_and_cfg1_image() -> None:
    from sdlab.embedded.training.evaluate import SAMPLE_COLUMNS, sample_rows

    images = {"adherence": np.zeros((3, 3, 4, 4)), "adherence_cfg1": np.ones((3, 3, 4, 4))}
    samples = {"captions": ["a", "b", "c"], **images}
    rows, captions = sample_rows({"samples": samples}, n=2)
    assert captions == ["a", "b"] and SAMPLE_COLUMNS == ("CFG 5", "CFG 1")
    assert [[float(x.mean()) for x in row] for row in rows] == [[0.0, 1.0], [0.0, 1.0]]
