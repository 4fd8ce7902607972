"""A1111 prompt conventions: emphasis parsing, unsupported syntax, 75-token chunking, weighting."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from sdlab.errors import SdlabError
from sdlab.models.prompts import (
    PromptChunk,
    check_prompt,
    encode_chunks,
    parse_prompt_attention,
    tokenize_prompt,
)


def _approx(pairs):
    return [(text, pytest.approx(weight, rel=1e-12)) for text, weight in pairs]


# --- parse_prompt_attention: the examples in A1111's docstring (modules/prompt_parser.py) -------------------


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("normal text", [("normal text", 1.0)]),
        ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
        ("(unbalanced", [("unbalanced", 1.1)]),
        ("\\(literal\\]", [("(literal]", 1.0)]),
        ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
        (
            "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
            [
                ("a ", 1.0),
                ("house", 1.5730000000000004),
                (" ", 1.1),
                ("on", 1.0),
                (" a ", 1.1),
                ("hill", 0.55),
                (", sun, ", 1.1),
                ("sky", 1.4641000000000006),
                (".", 1.1),
            ],
        ),
    ],
)
def test_parse_matches_a1111_docstring(prompt, expected):
    assert parse_prompt_attention(prompt) == _approx(expected)


def test_parse_emphasis_forms():
    assert parse_prompt_attention("a (very beautiful:1.3) [cat]") == _approx(
        [("a ", 1.0), ("very beautiful", 1.3), (" ", 1.0), ("cat", 1 / 1.1)]
    )
    assert parse_prompt_attention("((word))") == _approx([("word", 1.1 * 1.1)])
    assert parse_prompt_attention("[[word]]") == _approx([("word", 1 / 1.1 / 1.1)])
    assert parse_prompt_attention("(word:1.2)") == _approx([("word", 1.2)])
    assert parse_prompt_attention("") == [("", 1.0)]
    assert parse_prompt_attention("a \\\\ b") == [("a \\ b", 1.0)]


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("(word: 1.2)", [("word", 1.2)]),
        ("(word:1.2 )", [("word", 1.2)]),
        ("(word : 1.2)", [("word ", 1.2)]),  # the space before the colon is text, as in A1111
        ("(a:\t1.5\n)", [("a", 1.5)]),
        ("(a:  \r\n .5 \t )", [("a", 0.5)]),
        ("x (a: -0.5) y", [("x ", 1.0), ("a", -0.5), (" y", 1.0)]),
        ("((a: 2)) [b: 1.2 ]", [("a", 2.2), (" ", 1.0), ("b: 1.2 ", 1 / 1.1)]),  # weights only close round brackets
        ("(a: 1.2", [("a: 1.2", 1.1)]),  # no closing bracket: text, and the bracket reaches to the end
        ("(a: 1 .2)", [("a: 1 .2", 1.1)]),  # whitespace only around the number, not inside it
    ],
)
def test_weight_allows_whitespace_around_the_number(prompt, expected):
    """A1111's attention pattern is ``:\\s*([+-]?[.\\d]+)\\s*\\)``: whitespace may surround the number."""
    assert parse_prompt_attention(prompt) == _approx(expected)


@pytest.mark.parametrize("prompt", ["(a:1.2.3)", "(a: ..)", "(a:+.)"])
def test_weight_that_is_no_number_raises_sdlab_error(prompt):
    with pytest.raises(SdlabError, match="not a number"):
        parse_prompt_attention(prompt)


def test_parse_break():
    assert parse_prompt_attention("a cat BREAK a dog") == [("a cat", 1.0), ("BREAK", -1.0), ("a dog", 1.0)]
    assert parse_prompt_attention("BREAKFAST") == [("BREAKFAST", 1.0)]  # BREAK only as a word


@pytest.mark.parametrize("prompt", ["a [cat:dog:0.5] photo", "[cat:10]", "a [cat::0.25]", "[cat|dog]", "a AND b"])
def test_unsupported_syntax_raises(prompt):
    with pytest.raises(SdlabError, match="not supported"):
        check_prompt(prompt)


@pytest.mark.parametrize("prompt", ["a [cat] (dog:1.2)", "\\[cat:dog:0.5\\]", "[a:b]", "a|b", "android", "[(x:1.2)]"])
def test_supported_syntax_passes(prompt):
    check_prompt(prompt)


# --- tokenize_prompt: chunks of 75 tokens with BOS/EOS -------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer():
    from sdlab.testing import tiny_tokenizer

    return tiny_tokenizer()


def _ids(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _body(chunk: PromptChunk, eos: int) -> list[int]:
    inner = list(chunk.tokens[1:-1])
    while inner and inner[-1] == eos:
        inner.pop()
    return inner


def test_100_token_prompt_makes_two_chunks(tokenizer):
    prompt = " ".join(["cat"] * 100)
    assert len(_ids(tokenizer, prompt)) == 100
    chunks = tokenize_prompt(prompt, tokenizer)
    bos, eos, cat = tokenizer.bos_token_id, tokenizer.eos_token_id, _ids(tokenizer, "cat")[0]
    assert len(chunks) == 2
    for chunk in chunks:
        assert len(chunk.tokens) == len(chunk.multipliers) == 77
        assert chunk.tokens[0] == bos and chunk.tokens[-1] == eos
    assert list(chunks[0].tokens[1:76]) == [cat] * 75
    assert list(chunks[1].tokens[1:26]) == [cat] * 25 and set(chunks[1].tokens[26:]) == {eos}


def test_empty_prompt_is_one_padded_chunk(tokenizer):
    (chunk,) = tokenize_prompt("", tokenizer)
    assert chunk.tokens == (tokenizer.bos_token_id,) + (tokenizer.eos_token_id,) * 76
    assert chunk.multipliers == (1.0,) * 77


def test_comma_within_20_tokens_moves_the_rest_to_the_next_chunk(tokenizer):
    cat, comma, eos = _ids(tokenizer, "cat")[0], _ids(tokenizer, ",")[0], tokenizer.eos_token_id
    prompt = " ".join(["cat"] * 70) + ", " + " ".join(["dog"] * 10)
    first, second = tokenize_prompt(prompt, tokenizer)
    assert _body(first, eos) == [cat] * 70 + [comma]  # 71 tokens, the dogs moved on
    assert _body(second, eos) == _ids(tokenizer, " ".join(["dog"] * 10))


def test_comma_further_back_does_not_move(tokenizer):
    cat, eos = _ids(tokenizer, "cat")[0], tokenizer.eos_token_id
    prompt = " ".join(["cat"] * 50) + ", " + " ".join(["cat"] * 40)
    first, second = tokenize_prompt(prompt, tokenizer)
    assert len(_body(first, eos)) == 75  # the comma is 25 tokens back: no move
    assert _body(second, eos) == [cat] * 16


def test_break_starts_a_new_chunk(tokenizer):
    chunks = tokenize_prompt("a cat BREAK a dog", tokenizer)
    eos = tokenizer.eos_token_id
    assert [_body(c, eos) for c in chunks] == [_ids(tokenizer, "a cat"), _ids(tokenizer, "a dog")]


def test_weights_follow_tokens(tokenizer):
    (chunk,) = tokenize_prompt("(cat:1.5) [dog]", tokenizer)
    n_cat, n_dog = len(_ids(tokenizer, "cat")), len(_ids(tokenizer, "dog"))
    assert chunk.multipliers[0] == 1.0
    assert chunk.multipliers[1 : 1 + n_cat] == (1.5,) * n_cat
    assert chunk.multipliers[1 + n_cat : 1 + n_cat + n_dog] == pytest.approx((1 / 1.1,) * n_dog)
    assert set(chunk.multipliers[1 + n_cat + n_dog :]) == {1.0}


def test_emphasis_none_reads_brackets_literally(tokenizer):
    (chunk,) = tokenize_prompt("(cat)", tokenizer, emphasis="None")
    assert _body(chunk, tokenizer.eos_token_id) == _ids(tokenizer, "(cat)")
    assert set(chunk.multipliers) == {1.0}
    with pytest.raises(SdlabError, match="emphasis"):
        tokenize_prompt("cat", tokenizer, emphasis="original")


# --- encode_chunks: padding token and A1111's mean-restoring weighting, on a stub encoder --------------------


class _StubEncoder:
    """Returns hidden states that depend on token ids and position, and records its inputs."""

    device = torch.device("cpu")

    def __init__(self) -> None:
        self.inputs: list[torch.Tensor] = []

    def __call__(self, input_ids, output_hidden_states=False):
        self.inputs.append(input_ids.clone())
        pos = torch.arange(input_ids.shape[1], dtype=torch.float32).expand(input_ids.shape)
        z = torch.stack([input_ids.float() * 0.01 + 1, pos * 0.1 + 2], dim=-1)  # (1, T, 2), positive
        return SimpleNamespace(last_hidden_state=z, hidden_states=(z,))


def test_weighting_restores_the_mean(tokenizer):
    stub = _StubEncoder()
    chunks = tokenize_prompt("a (cat:1.5) [dog]", tokenizer)
    z, pooled = encode_chunks(chunks, stub, tokenizer)
    raw = stub(stub.inputs[0]).last_hidden_state
    weights = torch.tensor(chunks[0].multipliers)[None, :, None]
    expected = raw * weights * (raw.mean() / (raw * weights).mean())
    assert pooled is None
    torch.testing.assert_close(z, expected)
    torch.testing.assert_close(z.mean(), raw.mean())
    unweighted, _ = encode_chunks(tokenize_prompt("a cat dog", tokenizer), _StubEncoder(), tokenizer)
    assert not torch.allclose(unweighted, z[:, : unweighted.shape[1]])


def test_openclip_padding_after_first_eos():
    from sdlab.testing import tiny_tokenizer

    sd2_tokenizer = tiny_tokenizer(pad_token="!")
    stub = _StubEncoder()
    chunks = tokenize_prompt("a cat", sd2_tokenizer)
    encode_chunks(chunks, stub, sd2_tokenizer)
    ids = stub.inputs[0][0].tolist()
    n = len(_ids(sd2_tokenizer, "a cat"))
    assert ids[n + 1] == sd2_tokenizer.eos_token_id  # the first EOS stays
    assert ids[n + 2 :] == [sd2_tokenizer.pad_token_id] * (77 - n - 2)
    assert sd2_tokenizer.pad_token_id != sd2_tokenizer.eos_token_id
