"""Prompts to conditioning, with AUTOMATIC1111's conventions, so that the tensors match A1111's.

* Emphasis (``modules/prompt_parser.py``): ``(word)`` x1.1, ``((word))`` x1.21, ``(word:1.3)`` x1.3 (whitespace
  around the number allowed: ``(word: 1.3 )``), ``[word]`` /1.1, ``\\(`` ``\\)`` ``\\[`` ``\\]`` ``\\\\`` literal
  characters, unclosed brackets apply to the end.
* ``BREAK`` starts a new 75-token chunk.
* Chunks (``modules/sd_hijack_clip.py``): 75 tokens plus BOS and EOS each, padded with EOS (SD1) or
  with the tokenizer's pad token after the first EOS (SD2/SDXL's OpenCLIP); a chunk that fills up
  moves the words after its last comma to the next chunk if that comma is within the last 20 tokens.
  Each chunk is encoded separately and the results are concatenated along the token axis.
* Weighting ("Original" emphasis): hidden states times the token weights, then rescaled so that their
  mean is the unweighted mean.
* CLIP skip (SD1): ``clip_skip=k > 1`` takes ``hidden_states[-k]`` and applies the final layer norm.
  A1111 ignores the setting for SD2 and SDXL (a warning says so).
* SDXL: CLIP-L and OpenCLIP-bigG penultimate hidden states side by side, the pooled bigG embedding of the
  first chunk, and ``time_ids = (height, width, 0, 0, height, width)``; an empty negative prompt
  becomes zeros (A1111 and diffusers' ``force_zeros_for_empty_prompt``).

Not supported (SdlabError): prompt editing ``[a:b:0.5]`` / ``[a:0.5]``, alternation ``[a|b]``, composable
``AND`` and textual-inversion embeddings.

>>> parse_prompt_attention("a (very beautiful:1.3) [cat]")
[('a ', 1.0), ('very beautiful', 1.3), (' ', 1.0), ('cat', 0.9090909090909091)]
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from sdlab.errors import SdlabError, closest

__all__ = [
    "EMPHASIS_MODES",
    "CHUNK_LENGTH",
    "PromptChunk",
    "Conditioning",
    "parse_prompt_attention",
    "check_prompt",
    "tokenize_prompt",
    "encode_chunks",
    "encode_prompt",
]

CHUNK_LENGTH = 75  # prompt tokens per chunk; with BOS and EOS each chunk is CLIP's 77
COMMA_BACKTRACK = 20  # A1111's "comma_padding_backtrack" default
EMPHASIS_MODES = ("Original", "No norm", "Ignore", "None")

_ROUND, _SQUARE = 1.1, 1 / 1.1

# One token of A1111's attention syntax: an escape, a bracket, ":weight)", a run of plain text, or ":".
_ATTENTION = re.compile(
    r"""
    \\[()\[\]\\]        # escaped bracket or backslash
    | \\                # lone backslash
    | \(  | \[          # openers
    | :\s*([+-]?[.\d]+)\s*\)  # weight and closing round bracket, whitespace allowed around the number
    | \)  | ]           # closers
    | [^\\()\[\]:]+     # plain text
    | :
    """,
    re.X,
)
_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)
_AND = re.compile(r"\bAND\b")


def parse_prompt_attention(text: str) -> list[tuple[str, float]]:
    """Split ``text`` into ``(fragment, weight)`` pairs with A1111's emphasis rules; BREAK is ``("BREAK", -1.0)``.

    >>> parse_prompt_attention("a ((house)) [on] (hill:0.5)")
    [('a ', 1.0), ('house', 1.2100000000000002), (' ', 1.0), ('on', 0.9090909090909091), (' ', 1.0), ('hill', 0.5)]
    """
    res: list[list[Any]] = []
    round_open: list[int] = []
    square_open: list[int] = []

    def multiply_from(start: int, factor: float) -> None:
        for item in res[start:]:
            item[1] *= factor

    for m in _ATTENTION.finditer(text):
        piece, weight = m.group(0), m.group(1)
        if piece.startswith("\\"):
            res.append([piece[1:], 1.0])
        elif piece == "(":
            round_open.append(len(res))
        elif piece == "[":
            square_open.append(len(res))
        elif weight is not None and round_open:
            multiply_from(round_open.pop(), _weight(weight, text))
        elif piece == ")" and round_open:
            multiply_from(round_open.pop(), _ROUND)
        elif piece == "]" and square_open:
            multiply_from(square_open.pop(), _SQUARE)
        else:
            for i, part in enumerate(_BREAK.split(piece)):
                if i > 0:
                    res.append(["BREAK", -1.0])
                res.append([part, 1.0])
    for start in round_open:  # unclosed brackets reach to the end
        multiply_from(start, _ROUND)
    for start in square_open:
        multiply_from(start, _SQUARE)
    if not res:
        res = [["", 1.0]]
    merged: list[list[Any]] = [res[0]]
    for item in res[1:]:  # join neighbours of equal weight
        if item[1] == merged[-1][1]:
            merged[-1][0] += item[0]
        else:
            merged.append(item)
    return [(t, float(w)) for t, w in merged]


def _weight(number: str, prompt: str) -> float:
    """The weight in ``(text:number)``; A1111's pattern also admits strings such as "1.2.3" that are no number."""
    try:
        return float(number)
    except ValueError:
        raise SdlabError(
            f"emphasis weight {number!r} is not a number", prompt=prompt, hint="write it like (word:1.2)"
        ) from None


_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _top_level_split(content: str, sep: str) -> list[str]:
    """Split on ``sep`` outside nested brackets and escapes."""
    parts, depth, start, escaped = [], 0, 0, False
    for i, ch in enumerate(content):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in "[(":
            depth += 1
        elif ch in "])":
            depth = max(depth - 1, 0)
        elif ch == sep and depth == 0:
            parts.append(content[start:i])
            start = i + 1
    return [*parts, content[start:]]


def check_prompt(text: str) -> None:
    """Raise SdlabError for A1111 syntax sdlab does not implement: ``[a:b:0.5]``, ``[a|b]`` and ``AND``."""
    if _AND.search(text):
        raise SdlabError(
            "composable prompts ('AND') are not supported", prompt=text, hint="write one prompt without AND"
        )
    opened: list[int] = []
    escaped = False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "[":
            opened.append(i)
        elif ch == "]" and opened:
            content = text[opened.pop() + 1 : i]
            if len(_top_level_split(content, "|")) > 1:
                problem = "alternation [a|b]"
            elif len(parts := _top_level_split(content, ":")) > 1 and _NUMBER.fullmatch(parts[-1]):
                problem = "prompt editing [a:b:when]"
            else:
                continue
            raise SdlabError(
                f"{problem} is not supported",
                prompt=text,
                group=f"[{content}]",
                hint="use one fixed prompt, or escape literal brackets as \\[ \\]",
            )


@dataclass(frozen=True)
class PromptChunk:
    """Token ids (BOS, 75 prompt or padding tokens, EOS for CLIP's 77) and each token's emphasis weight."""

    tokens: tuple[int, ...]
    multipliers: tuple[float, ...]


def tokenize_prompt(
    text: str,
    tokenizer: Any,
    *,
    emphasis: str = "Original",
    chunk_length: int = CHUNK_LENGTH,
    comma_backtrack: int = COMMA_BACKTRACK,
) -> list[PromptChunk]:
    """A1111's ``tokenize_line``: the prompt as chunks of BOS + ``chunk_length`` tokens + EOS, with weights.

    ``emphasis="None"`` reads brackets and BREAK literally; the other modes parse them. ``chunk_length`` is 75
    for CLIP's 77 positions; a text encoder with fewer positions gets shorter chunks.
    """
    if emphasis not in EMPHASIS_MODES:
        raise SdlabError(
            f"unknown emphasis mode {emphasis!r}", emphasis=emphasis, hint=closest(emphasis, EMPHASIS_MODES)
        )
    check_prompt(text)
    parsed = parse_prompt_attention(text) if emphasis != "None" else [(text, 1.0)]
    ids = tokenizer([t for t, _ in parsed], truncation=False, add_special_tokens=False, verbose=False)["input_ids"]
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    comma = _comma_id(tokenizer)

    chunks: list[PromptChunk] = []
    tokens: list[int] = []
    weights: list[float] = []
    last_comma = -1

    def close_chunk() -> None:
        nonlocal tokens, weights, last_comma
        pad = chunk_length - len(tokens)
        chunks.append(PromptChunk((bos, *tokens, *[eos] * pad, eos), (1.0, *weights, *[1.0] * pad, 1.0)))
        tokens, weights, last_comma = [], [], -1

    for fragment_ids, (fragment, weight) in zip(ids, parsed, strict=True):
        if fragment == "BREAK" and weight == -1:
            close_chunk()
            continue
        for token in fragment_ids:
            if token == comma:
                last_comma = len(tokens)
            elif (
                comma_backtrack
                and len(tokens) == chunk_length
                and last_comma != -1
                and len(tokens) - last_comma <= comma_backtrack
            ):  # full chunk with a recent comma: carry the words after it over
                cut = last_comma + 1
                carried = tokens[cut:], weights[cut:]
                tokens, weights = tokens[:cut], weights[:cut]
                close_chunk()
                tokens, weights = list(carried[0]), list(carried[1])
            if len(tokens) == chunk_length:
                close_chunk()
            tokens.append(token)
            weights.append(weight)
    if tokens or not chunks:
        close_chunk()
    return chunks


def _comma_id(tokenizer: Any) -> int | None:
    """The id of CLIP's ",</w>" token, or None where the vocabulary has none: one lookup, never the whole
    vocabulary (building ``get_vocab()``'s 49,408-entry dict cost 27 ms a prompt)."""
    unk = tokenizer.unk_token_id
    found = tokenizer.convert_tokens_to_ids(",</w>")
    return None if found is None or (found == unk and tokenizer.unk_token != ",</w>") else int(found)


def _final_layer_norm(text_encoder: Any) -> Any:
    return getattr(text_encoder, "text_model", text_encoder).final_layer_norm


@torch.no_grad()
def encode_chunks(
    chunks: list[PromptChunk],
    text_encoder: Any,
    tokenizer: Any,
    *,
    layer: int | None = None,
    final_norm: bool = True,
    emphasis: str = "Original",
) -> tuple[Tensor, Tensor | None]:
    """Encode chunks one at a time (A1111's ``process_tokens``) and weight them.

    ``layer=None`` takes the last hidden state (with CLIP's final layer norm); an index such as ``-2``
    takes ``hidden_states[layer]``, followed by the final layer norm if ``final_norm``. Returns the
    float32 hidden states ``(1, 77 * len(chunks), C)`` and, for a CLIPTextModelWithProjection, the
    pooled projection of the first chunk ``(1, P)`` (else None).
    """
    device = text_encoder.device
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    zs, pooled = [], None
    for chunk in chunks:
        ids = torch.tensor([chunk.tokens], device=device)
        if pad is not None and pad != eos:  # OpenCLIP pads with its own token after the first EOS
            first_eos = chunk.tokens.index(eos)
            ids[0, first_eos + 1 :] = pad
        out = text_encoder(input_ids=ids, output_hidden_states=layer is not None)
        if layer is None:
            z = out.last_hidden_state
        else:
            z = out.hidden_states[layer]
            if final_norm:
                z = _final_layer_norm(text_encoder)(z)
        if pooled is None and getattr(out, "text_embeds", None) is not None:
            pooled = out.text_embeds.float()
        if emphasis in ("Original", "No norm"):
            original_mean = z.mean()  # in the encoder's dtype, as A1111 computes it
            weights = torch.tensor(chunk.multipliers, device=device, dtype=torch.float32)
            z = z.float() * weights[None, :, None]
            if emphasis == "Original":
                z = z * (original_mean.float() / z.mean())
        zs.append(z.float())
    return torch.cat(zs, dim=1), pooled


@dataclass
class Conditioning:
    """Encoded prompts: the UNet keyword arguments for cond and uncond, batch = number of prompts.

    ``cond["encoder_hidden_states"]`` is ``(B, 77k, C)`` float32; SDXL adds ``text_embeds`` ``(B, P)``
    and ``time_ids`` ``(B, 6)``. ``empty`` is the empty prompt's ``(1, 77, C)`` encoding, which A1111
    uses to pad cond and uncond to the same length (``CFGDenoiser(pad="empty")``).
    """

    cond: dict[str, Tensor]
    uncond: dict[str, Tensor]
    empty: Tensor
    prompts: tuple[str, ...]
    negative_prompts: tuple[str, ...]
    clip_skip: int
    size: tuple[int, int] | None
    emphasis: str


def _stack_rows(rows: list[Tensor]) -> Tensor:
    """Batch (1, T_i, C) encodings, repeating each one's last token vector up to the longest (A1111)."""
    longest = max(r.shape[1] for r in rows)
    padded = [torch.cat([r, r[:, -1:].expand(-1, longest - r.shape[1], -1)], dim=1) for r in rows]
    return torch.cat(padded)


def _check_prompt_list(name: str, prompts: Any) -> list[str]:
    if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
        raise SdlabError(f"{name} must be a list of strings", hint=f"wrap a single prompt: {name}=[...]")
    return list(prompts)


def _check_encode_options(
    pipe: Any, prompts: list[str], negative_prompts: list[str], *, kind: str, clip_skip: int, emphasis: str
) -> None:
    """Refuse what :func:`encode_prompt` cannot encode; warn that A1111 ignores Clip skip outside SD 1.x."""
    if not prompts or len(prompts) != len(negative_prompts):
        raise SdlabError(
            "need one negative prompt per prompt",
            prompts=len(prompts),
            negative_prompts=len(negative_prompts),
            hint='pass negative_prompts=[""] * len(prompts) for no negative prompt',
        )
    if not isinstance(clip_skip, int) or clip_skip < 1:
        raise SdlabError("clip_skip must be an integer >= 1 (1 = last layer)", clip_skip=clip_skip)
    if emphasis not in EMPHASIS_MODES:
        raise SdlabError(
            f"unknown emphasis mode {emphasis!r}", emphasis=emphasis, hint=closest(emphasis, EMPHASIS_MODES)
        )
    if kind == "sd1":
        layers = pipe.text_encoder.config.num_hidden_layers
        if clip_skip > layers:
            raise SdlabError("clip_skip exceeds the text encoder's layers", clip_skip=clip_skip, layers=layers)
    elif clip_skip != 1:
        warnings.warn(
            f"A1111 ignores Clip skip for {kind} models; clip_skip={clip_skip} leaves the conditioning unchanged",
            stacklevel=4,  # the caller of encode_prompt's caller, as before,
        )


def encode_prompt(
    pipe: Any,
    prompts: list[str],
    negative_prompts: list[str],
    *,
    kind: str,
    clip_skip: int = 1,
    size: tuple[int, int] | None = None,
    emphasis: str = "Original",
) -> Conditioning:
    """Encode prompts and negative prompts for a diffusers SD pipeline of ``kind`` ("sd1", "sd2", "sdxl").

    Each prompt is encoded on its own (A1111 does so too: the emphasis mean is per prompt and chunk).
    Prompts of different lengths in one batch are padded by repeating their last token vector, as
    A1111's ``reconstruct_multicond_batch`` does. ``size=(width, height)`` sets SDXL's size conditioning
    (default: the UNet's native size).
    """
    prompts = _check_prompt_list("prompts", prompts)
    negative_prompts = _check_prompt_list("negative_prompts", negative_prompts)
    _check_encode_options(pipe, prompts, negative_prompts, kind=kind, clip_skip=clip_skip, emphasis=emphasis)
    if kind == "sdxl":  # CLIP-L and OpenCLIP-bigG, both at the penultimate layer without the final norm
        encoders = [(pipe.tokenizer, pipe.text_encoder, -2, False), (pipe.tokenizer_2, pipe.text_encoder_2, -2, False)]
    else:  # SD2's diffusers text encoder already ends at OpenCLIP's penultimate layer + final norm
        encoders = [(pipe.tokenizer, pipe.text_encoder, -clip_skip if kind == "sd1" and clip_skip > 1 else None, True)]
    cache: dict[str, tuple[Tensor, Tensor | None]] = {}

    def encode_one(text: str) -> tuple[Tensor, Tensor | None]:
        if text in cache:
            return cache[text]
        zs, pooled = [], None
        for tokenizer, text_encoder, layer, final_norm in encoders:
            chunk_length = text_encoder.config.max_position_embeddings - 2
            chunks = tokenize_prompt(text, tokenizer, emphasis=emphasis, chunk_length=chunk_length)
            if zs and len(chunks) * (chunk_length + 2) != zs[0].shape[1]:
                raise SdlabError("SDXL's two tokenizers split the prompt differently", prompt=text)
            z, p = encode_chunks(chunks, text_encoder, tokenizer, layer=layer, final_norm=final_norm, emphasis=emphasis)
            zs.append(z)
            pooled = p if p is not None else pooled
        cache[text] = (torch.cat(zs, dim=-1), pooled)
        return cache[text]

    cond_rows = [encode_one(p) for p in prompts]
    uncond_rows = []
    for text in negative_prompts:
        z, pooled = encode_one(text)
        if kind == "sdxl" and text == "":  # A1111: an empty SDXL negative prompt is all zeros
            z, pooled = torch.zeros_like(z), torch.zeros_like(pooled)
        uncond_rows.append((z, pooled))
    cond = {"encoder_hidden_states": _stack_rows([z for z, _ in cond_rows])}
    uncond = {"encoder_hidden_states": _stack_rows([z for z, _ in uncond_rows])}
    if kind == "sdxl":
        if size is None:
            side = pipe.unet.config.sample_size * pipe.vae_scale_factor
            size = (side, side)
        width, height = size
        time_ids = torch.tensor([[height, width, 0, 0, height, width]], dtype=torch.float32)
        time_ids = time_ids.to(cond["encoder_hidden_states"].device).expand(len(prompts), -1)
        cond |= {"text_embeds": torch.cat([p for _, p in cond_rows]), "time_ids": time_ids}
        uncond |= {"text_embeds": torch.cat([p for _, p in uncond_rows]), "time_ids": time_ids}
    return Conditioning(
        cond=cond,
        uncond=uncond,
        empty=encode_one("")[0],
        prompts=tuple(prompts),
        negative_prompts=tuple(negative_prompts),
        clip_skip=clip_skip,
        size=None if size is None else (int(size[0]), int(size[1])),
        emphasis=emphasis,
    )
