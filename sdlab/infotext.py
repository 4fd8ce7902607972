"""A1111 infotext: the "parameters" text A1111 stores in every PNG, written and read with A1111's rules.

The text is the prompt (any number of lines), an optional line ``Negative prompt: ...`` (which may continue on
further lines), then one line of ``Key: value`` pairs joined by ", ". A value holding a comma, a colon or a
newline is written as a JSON string. A1111 reads the last line as parameters only if it holds at least three
pairs (``modules/infotext_utils.py`` ``parse_generation_parameters``, ``processing.py`` ``create_infotext``).

Here a params dict uses A1111's keys ("Steps", "CFG scale", ...) plus ``"prompt"`` and ``"negative_prompt"``;
known keys carry Python values (``"Steps": 20``, ``"Size": (512, 768)``, ``"Tiling": True``), any other key a
string. (Sizes may also be given as "512x768"; they read back as tuples, or ``None`` for A1111's "-1x-1".)

>>> text = format_infotext({"prompt": "a cat", "Steps": 20, "Sampler": "Euler a", "Size": (512, 512)})
>>> print(text)
a cat
Steps: 20, Sampler: Euler a, Size: 512x512
>>> parse_infotext(text, defaults=False)
{'prompt': 'a cat', 'negative_prompt': '', 'Steps': 20, 'Sampler': 'Euler a', 'Size': (512, 512)}
"""

from __future__ import annotations

import contextlib
import errno
import filecmp
import itertools
import json
import numbers
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdlab.errors import SdlabError, closest

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["format_infotext", "parse_infotext", "write_png", "write_new_png", "read_png", "SCHEDULE_LABELS"]

NEGATIVE = "Negative prompt:"
RNG_SOURCES = ("GPU", "CPU", "NV")

# A1111 v1.10 schedules (sd_schedulers.schedulers): label, name, aliases. Order matters for the legacy split.
SCHEDULE_LABELS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Automatic", "automatic", ()),
    ("Uniform", "uniform", ()),
    ("Karras", "karras", ()),
    ("Exponential", "exponential", ()),
    ("Polyexponential", "polyexponential", ()),
    ("SGM Uniform", "sgm_uniform", ("SGMUniform",)),
    ("KL Optimal", "kl_optimal", ()),
    ("Align Your Steps", "align_your_steps", ()),
    ("Simple", "simple", ()),
    ("Normal", "normal", ()),
    ("DDIM", "ddim", ()),
    ("Beta", "beta", ()),
)

# What A1111's reading fills in when a key is missing (only the keys that change sampling).
DEFAULTS: dict[str, Any] = {
    "Clip skip": 1,
    "RNG": "GPU",
    "Schedule type": "Automatic",
    "Schedule max sigma": 0.0,
    "Schedule min sigma": 0.0,
    "Schedule rho": 0.0,
}

# One "Key: value" pair: A1111's grammar (its ``re_param_code``). A key starts with a word character and runs on in
# word characters, spaces, "-" and "/"; a value is a JSON string followed by a comma or the end, else anything up to
# the next comma. The JSON string is written as an unrolled loop: the same strings as A1111's ``(\\.|[^\\"])+``,
# but a failed attempt backtracks in linear time. One match costs time linear in the text it covers.
_PAIR = re.compile(
    r"""\s* (?P<key> \w [\w\ \-/]+ ) : \s*
        (?P<value> "(?!") [^\\"]* (?: \\. [^\\"]* )* " (?= , | $ ) | [^,]* )
        (?: , | $ )""",
    re.VERBOSE,
)
# Where the next pair can start: a maximal run of key characters whose first word character begins a key (a
# match attempt anywhere else in the run reaches the same run end, so fails or finds the same key). Anchoring at
# run starts keeps a search linear; trying every position of a long run would be quadratic.
_KEY_START = re.compile(r"(?<![\w \-/])[ \-/]*(?P<key>\w[\w \-/]+):")
_BLANK = re.compile(r"\s*\Z")
MAX_CHARS = 8 * 1024 * 1024  # the longest infotext parse_infotext reads; A1111's are a few kB
MAX_INT_DIGITS = 4300  # Python's int() refuses longer digit strings (sys.int_info.default_max_str_digits)
_KEY = re.compile(r"\w[\w \-/]+")
_INT = re.compile(r"[+-]?\d+")
_SIZE = re.compile(r"(\d+)x(\d+)")
_UNSET_SIZE = re.compile(r"-?\d+x-?\d+")  # with a negative side: A1111's "not set" (checked after _SIZE)


# -- value types: (check and write a Python value, read it back from text) --------------------------------------


def _write_int(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError("an int")
    return str(int(v))


def _read_int(s: str) -> int:
    if not _INT.fullmatch(s):
        raise ValueError("an integer")
    if len(s.lstrip("+-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of at most {MAX_INT_DIGITS} digits")
    return int(s)


def _write_float(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError("a number")
    return str(v)


def _read_float(s: str) -> float:
    try:
        return float(s)
    except ValueError:
        raise ValueError("a number") from None


def _write_bool(v: Any) -> str:
    if not isinstance(v, bool):
        raise TypeError("True or False")
    return str(v)


def _read_bool(s: str) -> bool:
    if s not in ("True", "False"):
        raise ValueError("True or False")
    return s == "True"


def _write_size(v: Any) -> str:
    if isinstance(v, str) and _SIZE.fullmatch(v):  # already "WxH"
        return v
    if not isinstance(v, (tuple, list)) or len(v) != 2 or any(isinstance(n, bool) or not isinstance(n, int) for n in v):
        raise TypeError("(width, height) ints or a 'WxH' string")
    if min(v) < 0:
        raise TypeError("(width, height) non-negative ints")
    return f"{v[0]}x{v[1]}"


def _read_size(s: str) -> tuple[int, int] | None:
    """``(width, height)``; ``None`` for a size with a negative side, which A1111 writes for "no size"
    (its API's ``Seed resize from: -1x-1``) and reads as no value."""
    m = _SIZE.fullmatch(s)
    if m is None:
        if _UNSET_SIZE.fullmatch(s):
            return None
        raise ValueError("WxH, e.g. 512x768")
    return _read_int(m.group(1)), _read_int(m.group(2))


def _write_str(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError("a string")
    return v


def _read_str(s: str) -> str:
    return s


def _write_rng(v: Any) -> str:
    if v not in RNG_SOURCES:
        raise TypeError("one of " + ", ".join(RNG_SOURCES))
    return v


def _read_rng(s: str) -> str:
    if s not in RNG_SOURCES:
        raise ValueError("one of " + ", ".join(RNG_SOURCES))
    return s


INT = (_write_int, _read_int)
FLOAT = (_write_float, _read_float)
BOOL = (_write_bool, _read_bool)
SIZE = (_write_size, _read_size)
STR = (_write_str, _read_str)
RNG = (_write_rng, _read_rng)

# A1111's fixed keys, in the order create_infotext writes them (its own dict order).
FIXED_KEYS: dict[str, tuple[Callable[[Any], str], Callable[[str], Any]]] = {
    "Steps": INT,
    "Sampler": STR,
    "Schedule type": STR,
    "CFG scale": FLOAT,
    "Image CFG scale": FLOAT,
    "Seed": INT,
    "Face restoration": STR,
    "Size": SIZE,
    "Model hash": STR,
    "Model": STR,
    "FP8 weight": STR,
    "Cache FP16 weight for LoRA": BOOL,
    "VAE hash": STR,
    "VAE": STR,
    "Variation seed": INT,
    "Variation seed strength": FLOAT,
    "Seed resize from": SIZE,
    "Denoising strength": FLOAT,
    "Conditional mask weight": FLOAT,
    "Clip skip": INT,
    "ENSD": INT,
    "Token merging ratio": FLOAT,
    "Token merging ratio hr": FLOAT,
    "Init image hash": STR,
    "RNG": RNG,
    "Tiling": BOOL,
}
# Keys the samplers, the schedules and hires fix add (extra_generation_params), written after the fixed ones.
EXTRA_KEYS: dict[str, tuple[Callable[[Any], str], Callable[[str], Any]]] = {
    "Discard penultimate sigma": BOOL,
    "Schedule min sigma": FLOAT,
    "Schedule max sigma": FLOAT,
    "Schedule rho": FLOAT,
    "Beta schedule alpha": FLOAT,
    "Beta schedule beta": FLOAT,
    "SGM noise multiplier": BOOL,
    "Eta": FLOAT,
    "Eta DDIM": FLOAT,
    "Sigma churn": FLOAT,
    "Sigma tmin": FLOAT,
    "Sigma tmax": FLOAT,
    "Sigma noise": FLOAT,
    "Hires upscale": FLOAT,
    "Hires steps": INT,
    "Hires upscaler": STR,
    "Hires resize": SIZE,
    "First pass size": SIZE,
    "Hires sampler": STR,
    "Hires schedule type": STR,
    "Hires CFG Scale": FLOAT,
}
LAST_KEYS = {"Version": STR, "User": STR}
KEY_TYPES = {**FIXED_KEYS, **EXTRA_KEYS, **LAST_KEYS}


def _quote(text: str) -> str:
    """A value as A1111 writes it: JSON-quoted when it holds a comma, colon or newline.

    Also quoted here (A1111 reads these right too): empty values, values with surrounding whitespace, and
    values that start with a double quote.
    """
    if any(c in text for c in ",:\n") or text != text.strip() or not text or text.startswith('"'):
        return json.dumps(text, ensure_ascii=False)
    return text


def _unquote(key: str, text: str) -> str:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise SdlabError("infotext value is a broken JSON string", field=key, value=_clip(text)) from None
    return text.strip()


def format_infotext(params: dict[str, Any]) -> str:
    """The infotext A1111 would write for ``params`` (A1111 keys plus ``"prompt"``, ``"negative_prompt"``).

    A1111's fixed keys come first, in its order; then every other key in the order given; "Version" and
    "User" last. ``None`` values are left out, as A1111 does. At least three keys are needed: A1111 reads a
    last line with fewer pairs as part of the prompt.
    """
    prompt = params.get("prompt", "")
    negative = params.get("negative_prompt", "")
    for name, text in (("prompt", prompt), ("negative_prompt", negative)):
        if not isinstance(text, str):
            raise SdlabError(f"{name} must be a string", **{name: text})
    if any(line.strip().startswith(NEGATIVE) for line in prompt.split("\n")):
        raise SdlabError(
            f"the prompt has a line starting with {NEGATIVE!r}", hint="A1111 would read it as the negative prompt"
        )

    rest = {k: v for k, v in params.items() if k not in ("prompt", "negative_prompt") and v is not None}
    ordered = [k for k in FIXED_KEYS if k in rest]
    ordered += [k for k in rest if k not in FIXED_KEYS and k not in LAST_KEYS]
    ordered += [k for k in LAST_KEYS if k in rest]

    pairs = []
    for key in ordered:
        if key in ("Prompt", "Negative prompt"):
            raise SdlabError(f"{key!r} is not a parameter key", field=key, hint='use "prompt" / "negative_prompt"')
        if not isinstance(key, str) or key != key.strip() or not _KEY.fullmatch(key):
            raise SdlabError(
                "infotext key has characters A1111 cannot read",
                field=key,
                hint="keys are letters, digits, _, spaces, - and /, at least two characters",
            )
        value = rest[key]
        if key in KEY_TYPES:
            write = KEY_TYPES[key][0]
        elif isinstance(value, (str, int, float)):
            write = str
        else:
            raise SdlabError("infotext values must be strings or numbers", field=key, value=value)
        try:
            text = write(value)
        except TypeError as e:
            raise SdlabError(f"infotext field must be {e}", field=key, value=value) from None
        pairs.append(f"{key}: {_quote(text)}")
    if len(pairs) < 3:
        raise SdlabError(
            "an infotext needs at least three parameters",
            keys=ordered,
            hint="A1111 reads a last line with fewer 'Key: value' pairs as prompt; add Steps, Sampler, Seed, ...",
        )

    negative_line = f"\n{NEGATIVE} {negative}" if negative else ""
    return f"{prompt}{negative_line}\n{', '.join(pairs)}".strip()


def _clip(text: str, limit: int = 80) -> str:
    """A value short enough to show in an error message."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def _search_pair(line: str, pos: int) -> re.Match[str] | None:
    """The next pair at or after ``pos`` (a line start or just after a pair), as A1111's ``findall`` finds it.

    Same key, value and end as A1111's regex search; the match may start later, past whitespace or characters
    that cannot begin a key. Linear time, unlike a plain regex search that retries every start in a long run.
    """
    start = _KEY_START.search(line, pos)
    return None if start is None else _PAIR.match(line, start.start("key"))


def _count_pairs(line: str, enough: int) -> int:
    """How many pairs A1111's ``findall`` finds in ``line``, counting no further than ``enough``."""
    count, pos = 0, 0
    while count < enough and (m := _search_pair(line, pos)) is not None:
        count, pos = count + 1, m.end()
    return count


def _split_pairs(line: str) -> Iterator[tuple[str, str]]:
    """Every ``Key: value`` pair of a parameters line, in order; anything else on the line is an error."""
    pos = 0
    while _BLANK.match(line, pos) is None:
        m = _PAIR.match(line, pos)
        if m is None:
            comma = line.find(",", pos)
            segment = line[pos : comma if comma >= 0 else len(line)].strip()
            raise SdlabError(
                "infotext parameter is not 'Key: value'",
                field=_clip(segment),
                hint="A1111 writes 'Key: value, Key: value'",
            )
        yield m.group("key"), m.group("value")
        pos = m.end()


def split_sampler(sampler: str) -> tuple[str, str | None]:
    """A1111's legacy reading of "DPM++ 2M Karras": the sampler "DPM++ 2M" and the schedule "Karras"."""
    schedule = None
    for label, name, aliases in SCHEDULE_LABELS:
        for option in (label, name, *aliases):
            if sampler.endswith(" " + option):
                sampler, schedule = sampler[: -len(option) - 1], label
                break
    return sampler, schedule


def parse_infotext(text: str, *, defaults: bool = True) -> dict[str, Any]:
    """Read an A1111 infotext into a params dict (the inverse of :func:`format_infotext`).

    Prompt lines are stripped, as A1111 strips them, and blank lines before the first text of the prompt or the
    negative prompt are dropped (A1111 adds a line break only after text). Without a "Schedule type" key a
    sampler named like "DPM++ 2M Karras" is split into sampler "DPM++ 2M" and schedule "Karras" (A1111's
    ``get_sampler_and_scheduler``, keeping the named schedule rather than folding it into "Automatic").
    With ``defaults`` the keys A1111 assumes when they are missing are filled in: Clip skip 1, RNG "GPU",
    Schedule type "Automatic", Schedule min/max sigma and rho 0. A value that does not read as its key's type
    raises :class:`SdlabError` naming the field; unknown keys come back as strings. A size with a negative side
    (A1111's API writes ``Seed resize from: -1x-1`` for "no resize") reads as ``None``, as A1111 ignores it.

    Time is linear in the length of ``text``, whatever it holds; a text over ``MAX_CHARS`` (8 MiB characters,
    some thousand times a real infotext) is refused with :class:`SdlabError`, as is anything that is not a str.
    Any other input that cannot be read raises :class:`SdlabError` too, never another exception.
    """
    if not isinstance(text, str):
        raise SdlabError("infotext must be a string", type=type(text).__name__)
    if len(text) > MAX_CHARS:
        raise SdlabError(
            f"infotext is longer than {MAX_CHARS:,} characters",
            chars=len(text),
            hint="an A1111 infotext is a few kB; this is not one",
        )
    *lines, last = text.replace("\r\n", "\n").strip().split("\n")
    if _count_pairs(last, 3) < 3:  # A1111: fewer than three pairs means no parameters line
        lines, last = [*lines, last], ""

    prompt, negative, in_negative = [], [], False
    for line in lines:
        line = line.strip()
        if line.startswith(NEGATIVE):
            in_negative, line = True, line[len(NEGATIVE) :].strip()
        part = negative if in_negative else prompt
        if line or part:  # A1111 joins lines with "\n" only once the text is not empty: leading blank lines drop
            part.append(line)
    params: dict[str, Any] = {"prompt": "\n".join(prompt), "negative_prompt": "\n".join(negative)}

    for key, raw in _split_pairs(last):
        if key in params:
            raise SdlabError("infotext has a key twice", field=_clip(key))
        value = _unquote(key, raw)
        if key in KEY_TYPES:
            try:
                value = KEY_TYPES[key][1](value)
            except ValueError as e:
                hint = closest(value, RNG_SOURCES) if key == "RNG" and len(value) < 100 else None
                raise SdlabError(f"infotext field must be {e}", field=key, value=_clip(value), hint=hint) from None
        params[key] = value

    if "Sampler" in params and "Schedule type" not in params:
        sampler, schedule = split_sampler(params["Sampler"])
        if schedule is not None:
            params["Sampler"], params["Schedule type"] = sampler, schedule
    if defaults:
        for key, value in DEFAULTS.items():
            params.setdefault(key, value)
    return params


def write_png(
    path: str | os.PathLike[str], image: Image.Image, infotext: str, spec: dict[str, Any] | None = None
) -> Path:
    """Save ``image`` as a PNG with A1111's "parameters" text and an "sdlab" text of ``json.dumps(spec)``.

    Atomic: the PNG is written to a temporary file beside ``path`` and moved into place, so ``path`` is either
    the old file or the complete new one. Returns the path.
    """
    from PIL import Image as PILImage
    from PIL.PngImagePlugin import PngInfo

    path = Path(path)
    if not isinstance(image, PILImage.Image):
        raise SdlabError(
            "image must be a PIL image",
            type=type(image).__name__,
            hint="convert it, e.g. PIL.Image.fromarray(uint8_array)",
        )
    if not isinstance(infotext, str):
        raise SdlabError(
            "infotext must be a string", type=type(infotext).__name__, hint="build it with format_infotext"
        )
    if not path.parent.is_dir():
        raise SdlabError("folder does not exist", path=str(path), hint="create it first")
    info = PngInfo()
    info.add_text("parameters", infotext)
    if spec is not None:
        try:
            info.add_text("sdlab", json.dumps(spec))
        except (TypeError, ValueError) as e:
            raise SdlabError(
                f"spec is not JSON-serialisable: {e}", path=str(path), hint="pass spec.to_dict()"
            ) from None

    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with open(tmp, "xb") as f:
            image.save(f, format="PNG", pnginfo=info)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_new_png(
    folder: str | os.PathLike[str],
    stem: str,
    image: Image.Image,
    infotext: str,
    spec: dict[str, Any] | None = None,
    *,
    taken: Iterable[Path] = (),
) -> Path:
    """Save ``image`` as ``folder/stem.png`` (see :func:`write_png`) without ever overwriting a file.

    Where that name is in ``taken`` (saved earlier by the caller) or held by a file with other bytes, the image
    goes to ``stem-2.png``, ``stem-3.png`` and so on; a file with exactly the same bytes is left as it is and its
    path returned, so saving the same image twice is idempotent. The file is written under a temporary name and
    then linked into place, so a failure leaves the complete file or nothing. The folder is created if needed;
    an OSError (read-only folder, a file where the folder should be, a full disk) raises SdlabError naming it.
    """
    out = Path(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _save_error(e, out) from e
    tmp = out / f".{stem}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        write_png(tmp, image, infotext, spec)
        return _place(tmp, out, stem, taken=set(taken))
    except OSError as e:
        raise _save_error(e, out / f"{stem}.png") from e
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _place(tmp: Path, out: Path, stem: str, *, taken: set[Path]) -> Path:
    """Put the finished file ``tmp`` at the first of ``stem``.png, ``stem``-2.png, ... that is neither in ``taken``
    nor an existing file with other bytes; an existing file with the same bytes is kept and its path returned."""
    for n in itertools.count(1):
        path = out / (f"{stem}.png" if n == 1 else f"{stem}-{n}.png")
        if path in taken:
            continue
        if _link_new(tmp, path):
            return path
        if path.is_file() and filecmp.cmp(tmp, path, shallow=False):
            return path
    raise AssertionError("unreachable")


_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK, errno.ENOSYS}


def _link_new(src: Path, dst: Path) -> bool:
    """Give ``src``'s file the name ``dst`` unless ``dst`` exists (then False); never overwrites.

    A hard link is atomic and fails on an existing name; on a file system without hard links, a check then a
    rename (atomic for the file's contents; a concurrent writer of the same name could slip in between)."""
    try:
        os.link(src, dst)
        return True
    except FileExistsError:
        return False
    except OSError as e:
        if e.errno not in _NO_HARD_LINKS:
            raise
    if os.path.lexists(dst):
        return False
    os.rename(src, dst)
    return True


def _save_error(e: OSError, path: Path) -> SdlabError:
    return SdlabError(
        f"cannot save the image: {e.strerror or e}",
        path=str(path),
        errno=errno.errorcode.get(e.errno or 0),
        hint="save into a folder that exists (or can be created), is writable and has free space",
    )


def read_png(path: str | os.PathLike[str]) -> tuple[str | None, Any]:
    """The "parameters" infotext and the decoded "sdlab" spec of a PNG; ``None`` for either that is absent."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise SdlabError("no such file", path=str(path))
    try:
        with PILImage.open(path) as image:
            if image.format != "PNG":
                raise SdlabError("not a PNG", path=str(path), format=image.format)
            chunks = dict(image.text)
    except UnidentifiedImageError:
        raise SdlabError("not an image", path=str(path)) from None
    infotext = chunks.get("parameters")
    spec = None
    if "sdlab" in chunks:
        try:
            spec = json.loads(chunks["sdlab"])
        except json.JSONDecodeError as e:
            raise SdlabError(f"the sdlab chunk is not JSON: {e}", path=str(path)) from None
    return (None if infotext is None else str(infotext)), spec
