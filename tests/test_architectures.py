"""The published architectures built in code, their original single-file layout, and loading those files offline."""

from __future__ import annotations

import json
import resource
import time

import pytest
import torch

from sdlab.errors import SdlabError
from sdlab.models import architectures, layout, load_model
from sdlab.models.single_file import recognise_single_file

NARROW = 0.1  # channels 32/64/128 (UNet), 32/... (VAE), 64/128 (text): every layer kept


pytestmark = [
    pytest.mark.usefixtures("one_thread", "no_network"),
    pytest.mark.filterwarnings("ignore:no CLIP vocabulary"),
]

KINDS = {"sd15": ("sd1", "epsilon"), "sd21-v": ("sd2", "v_prediction"), "sdxl-base": ("sdxl", "epsilon")}


@pytest.fixture(scope="module")
def narrow_files(tmp_path_factory):
    """Each architecture at a narrow width, weights rounded to fp16: a diffusers folder and an fp16 single file."""
    out = {}
    for name in KINDS:
        folder = tmp_path_factory.mktemp(name)
        pipe = architectures.build_pipeline(name, width=NARROW, seed=1)
        pipe.to(torch.float16).to(torch.float32)  # the folder holds the very weights the fp16 file holds
        architectures.write_folder(pipe, folder / "diffusers")
        file = architectures.write_single_file(pipe, folder / f"{name}.safetensors")
        out[name] = (folder / "diffusers", file)
    return out


def _meta_components(name):
    arch = architectures.architecture(name)
    return architectures.build_components(
        arch.kind, arch.prediction_type, unet_channels=320, vae_channels=128, text_hidden={}, device="meta"
    )


# --- the published numbers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sd15", {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480}),
        ("sd21-v", {"unet": 865_910_724, "vae": 83_653_863, "text_encoder": 340_387_840}),
        (
            "sdxl-base",
            {"unet": 2_567_463_684, "vae": 83_653_863, "text_encoder": 123_060_480, "text_encoder_2": 694_659_840},
        ),
    ],
)
def test_full_size_parameter_counts_are_the_published_ones(name, expected):
    components = _meta_components(name)  # on "meta": shapes only, no memory
    counts = {
        k: sum(p.numel() for p in v.parameters()) for k, v in components.items() if isinstance(v, torch.nn.Module)
    }
    assert counts == expected


def test_published_hyper_parameters():
    sd15, sd21, xl = (architectures.unet_config(k) for k in ("sd1", "sd2", "sdxl"))
    assert sd15["block_out_channels"] == [320, 640, 1280, 1280] and sd15["attention_head_dim"] == 8
    assert sd15["cross_attention_dim"] == 768 and not sd15.get("use_linear_projection")
    assert sd21["attention_head_dim"] == [5, 10, 20, 20] and sd21["cross_attention_dim"] == 1024
    assert sd21["use_linear_projection"] and sd21["upcast_attention"]
    assert xl["transformer_layers_per_block"] == [1, 2, 10] and xl["cross_attention_dim"] == 2048
    assert xl["projection_class_embeddings_input_dim"] == 2816 and xl["attention_head_dim"] == [5, 10, 20]
    h, g = architectures.text_encoder_config("openclip-h"), architectures.text_encoder_config("openclip-bigg")
    assert (h["hidden_size"], h["num_hidden_layers"], h["num_attention_heads"]) == (1024, 23, 16)
    assert (g["hidden_size"], g["num_hidden_layers"], g["num_attention_heads"]) == (1280, 32, 20)
    assert architectures.vae_config("sdxl")["scaling_factor"] == 0.13025


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        (
            "sd15",
            {
                "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (320, 768),
                "model.diffusion_model.input_blocks.3.0.op.weight": (320, 320, 3, 3),
                "model.diffusion_model.middle_block.1.proj_in.weight": (1280, 1280, 1, 1),
                "model.diffusion_model.output_blocks.2.1.conv.weight": (1280, 1280, 3, 3),
                "model.diffusion_model.output_blocks.5.2.conv.weight": (1280, 1280, 3, 3),
                "model.diffusion_model.output_blocks.11.0.skip_connection.weight": (320, 640, 1, 1),
                "model.diffusion_model.out.2.weight": (4, 320, 3, 3),
                "first_stage_model.encoder.mid.attn_1.q.weight": (512, 512, 1, 1),
                "first_stage_model.decoder.up.0.block.0.nin_shortcut.weight": (128, 256, 1, 1),
                "first_stage_model.decoder.up.3.upsample.conv.weight": (512, 512, 3, 3),
                "cond_stage_model.transformer.text_model.encoder.layers.11.mlp.fc2.weight": (768, 3072),
                "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": (49408, 768),
            },
        ),
        (
            "sd21-v",
            {
                "model.diffusion_model.input_blocks.1.1.proj_in.weight": (320, 320),
                "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (320, 1024),
                "cond_stage_model.model.transformer.resblocks.23.attn.in_proj_weight": (3072, 1024),
                "cond_stage_model.model.positional_embedding": (77, 1024),
                "cond_stage_model.model.text_projection": (1024, 1024),
                "cond_stage_model.model.ln_final.weight": (1024,),
            },
        ),
        (
            "sdxl-base",
            {
                "model.diffusion_model.label_emb.0.0.weight": (1280, 2816),
                "model.diffusion_model.input_blocks.7.1.transformer_blocks.9.attn1.to_q.weight": (1280, 1280),
                "model.diffusion_model.middle_block.1.transformer_blocks.9.ff.net.2.weight": (1280, 5120),
                "model.diffusion_model.output_blocks.2.2.conv.weight": (1280, 1280, 3, 3),
                "model.diffusion_model.output_blocks.5.2.conv.weight": (640, 640, 3, 3),
                "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight": (768,),
                "conditioner.embedders.1.model.transformer.resblocks.31.mlp.c_proj.weight": (1280, 5120),
                "conditioner.embedders.1.model.text_projection": (1280, 1280),
            },
        ),
    ],
)
def test_original_layout_keys_and_shapes(name, keys):
    """Keys of the real files (CompVis for SD 1.x/2.x, SGM for SDXL) with their full-size shapes."""
    components = _meta_components(name)
    state = layout.to_original(_Pipe(components))
    for key, shape in keys.items():
        assert tuple(state[key].shape) == shape, key
    assert recognise_single_file(state).kind == KINDS[name][0]


class _Pipe:
    def __init__(self, components):
        self.text_encoder_2 = None
        self.__dict__.update(components)


# --- narrow files round-trip ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(KINDS))
def test_narrow_file_has_the_full_key_structure(name, narrow_files):
    from safetensors import safe_open

    full = set(layout.to_original(_Pipe(_meta_components(name))))
    with safe_open(str(narrow_files[name][1]), framework="pt") as f:
        names = f.keys()
        assert set(names) == full
        assert {f.get_tensor(k).dtype for k in names if f.get_tensor(k).is_floating_point()} == {torch.float16}
        assert json.loads(json.dumps(f.metadata()))["modelspec.prediction_type"] in ("epsilon", "v")


@pytest.mark.parametrize("name", list(KINDS))
def test_single_file_loads_offline_and_matches_the_folder(name, narrow_files):
    folder, file = narrow_files[name]
    single = load_model(file, device="cpu")  # no config=, no hub
    reference = load_model(folder, device="cpu")
    assert (single.kind, single.prediction_type) == KINDS[name] == (reference.kind, reference.prediction_type)
    assert single.default_size == reference.default_size
    for component in ("unet", "vae", "text_encoder", "text_encoder_2"):
        a, b = getattr(single.pipe, component, None), getattr(reference.pipe, component, None)
        assert (a is None) == (b is None)
        if a is not None:
            sa, sb = a.state_dict(), b.state_dict()
            assert sa.keys() == sb.keys()
            assert all(torch.equal(sa[k], sb[k]) for k in sa), component
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, *single.latent_shape(64, 64), generator=g) * 3
    sigma = torch.full((1,), 3.0)
    prompts = (["a cat on a hill"], ["blurry"])
    out_single = single.denoiser(single.encode_prompt(*prompts), 5.0)(x, sigma)
    out_folder = reference.denoiser(reference.encode_prompt(*prompts), 5.0)(x, sigma)
    torch.testing.assert_close(out_single, out_folder, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(single.decode(out_single), reference.decode(out_folder), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", list(KINDS))
def test_layout_agrees_with_diffusers_own_converter(name, narrow_files):
    """diffusers' from_single_file (given the folder as config=) reads the file into the same weights."""
    folder, file = narrow_files[name]
    ours = load_model(file, device="cpu")
    theirs = load_model(file, device="cpu", config=folder)  # config= still overrides: diffusers' converter
    for component in ("unet", "vae", "text_encoder", "text_encoder_2"):
        a, b = getattr(ours.pipe, component, None), getattr(theirs.pipe, component, None)
        if a is None:
            continue
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys(), component
        assert all(torch.equal(sa[k], sb[k].to(sa[k].dtype)) for k in sa), component


# --- how the prediction type is decided -------------------------------------------------------------------------


def _resave(file, dest, *, metadata=None, drop=()):
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(file), framework="pt") as f:
        names = f.keys()
        state = {k: f.get_tensor(k) for k in names if k not in drop}
    save_file(state, str(dest), metadata=metadata)
    return dest


def test_a_yaml_beside_the_file_decides_as_in_a1111(narrow_files, tmp_path):
    file = _resave(
        narrow_files["sd21-v"][1], tmp_path / "m.safetensors", metadata={"modelspec.prediction_type": "epsilon"}
    )
    assert load_model(file, device="cpu").prediction_type == "epsilon"
    (tmp_path / "m.yaml").write_text('model:\n  params:\n    parameterization: "v"\n', encoding="utf-8")
    assert load_model(file, device="cpu").prediction_type == "v_prediction"


def test_sd2_without_a_declaration_is_probed(narrow_files, tmp_path, monkeypatch):
    from sdlab.models import single_file as loading

    file = _resave(narrow_files["sd21-v"][1], tmp_path / "plain.safetensors")
    seen = []
    for answer in (True, False):
        monkeypatch.setattr(loading, "_probe_v_prediction", lambda unet, a=answer: seen.append(unet) or a)
        model = load_model(file, device="cpu")
        assert model.prediction_type == ("v_prediction" if answer else "epsilon")
        assert model.default_size == ((768, 768) if answer else (512, 512))
    assert len(seen) == 2


def test_probe_reads_the_unet_as_a1111_does():
    """The probe's arithmetic: v when mean(UNet(0.5, t=999) - 0.5) < -1."""
    from sdlab.models import single_file as loading

    class Fake(torch.nn.Module):
        def __init__(self, shift):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.shift = shift
            self.config = type("C", (), {"cross_attention_dim": 8})()

        def forward(self, x, t, encoder_hidden_states, return_dict):
            assert int(t) == 999 and encoder_hidden_states.shape == (1, 2, 8) and float(x.mean()) == 0.5
            return (x + self.shift,)

    assert loading._probe_v_prediction(Fake(-1.5)) and not loading._probe_v_prediction(Fake(-0.5))


# --- what is refused ------------------------------------------------------------------------------------------


def test_other_checkpoints_are_refused_naming_what_they_are(narrow_files, tmp_path):
    from safetensors import safe_open

    with safe_open(str(narrow_files["sd15"][1]), framework="pt") as f:
        names = f.keys()
        shapes = {k: f.get_slice(k).get_shape() for k in names}
    inpaint = dict(shapes)
    inpaint["model.diffusion_model.input_blocks.0.0.weight"] = [32, 9, 3, 3]
    with pytest.raises(SdlabError, match="inpainting"):
        recognise_single_file(inpaint)
    refiner = {k: v for k, v in shapes.items() if not k.startswith("cond_stage_model.")}
    refiner["conditioner.embedders.0.model.token_embedding.weight"] = [49408, 1280]
    with pytest.raises(SdlabError, match="refiner"):
        recognise_single_file(refiner)
    no_text = {k: v for k, v in shapes.items() if not k.startswith("cond_stage_model.")}
    with pytest.raises(SdlabError, match="unrecognised"):
        recognise_single_file(no_text)
    broken = _resave(
        narrow_files["sd15"][1], tmp_path / "broken.safetensors", drop={"model.diffusion_model.out.2.weight"}
    )
    with pytest.raises(SdlabError, match="lacks a weight") as info:
        load_model(broken, device="cpu")
    assert "model.diffusion_model.out.2.weight" in str(info.value)


def test_width_is_checked():
    with pytest.raises(SdlabError, match="width"):
        architectures.build_pipeline("sd15", width=0)
    with pytest.raises(SdlabError, match="unknown architecture"):
        architectures.build_pipeline("sd3")


# --- full size on the CPU -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_full_size_sd15_single_file_generates_512px_on_the_cpu(tmp_path):
    """A full-size SD 1.5 file (random weights, fp16, 2.1 GB) loads offline and makes one 512x512 image in 2 steps."""
    import gc

    import sdlab.generation as generation

    t0 = time.perf_counter()
    pipe = architectures.build_pipeline("sd15", seed=0)
    file = architectures.write_single_file(pipe, tmp_path / "v1-5-random.safetensors")
    del pipe
    gc.collect()
    t1 = time.perf_counter()
    model = load_model(file, device="cpu")
    assert (model.kind, model.prediction_type, model.default_size) == ("sd1", "epsilon", (512, 512))
    t2 = time.perf_counter()
    result = generation.generate("a photo of a cat", sampler="DPM++ 2M", schedule="Karras", steps=2, seeds=[1],
                                 model=model, cfg=7.0)  # fmt: skip
    t3 = time.perf_counter()
    assert result.images.shape == (1, 3, 512, 512) and bool(torch.isfinite(result.images).all())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"\nbuild+write {t1 - t0:.1f} s, load {t2 - t1:.1f} s, generate {t3 - t2:.1f} s, peak RSS {peak:.1f} GiB")


def test_clip_tokenizer_reads_prompts_as_openclip_does():
    """With open_clip_torch installed (the `checkpoints` extra), the tokenizer for single files is CLIP's own BPE:
    the same ids as OpenCLIP's tokenizer, not the byte-level stand-in."""
    open_clip = pytest.importorskip("open_clip")
    from sdlab.models.architectures import clip_tokenizer

    tok = clip_tokenizer(warn=True)
    for prompt in ("a photo of a cat", "(masterpiece:1.2), a castle on a hill, sunset, highly detailed", "ÉtÉ à Paris"):
        theirs = [int(i) for i in open_clip.tokenize([prompt])[0] if int(i) != 0]  # OpenCLIP pads with 0
        assert tok(prompt)["input_ids"] == theirs, prompt
