"""Compact JSON text for the transcript's hot path, through CPython's C encoder.

`json.JSONEncoder.encode` rebuilds its C scanner on every call; building it once
halves the cost of encoding each recorded event. The scanner's constructor,
`json.encoder.c_make_encoder`, is not a documented API, so it is used here only,
behind `compact_encoder`, with the documented encoder as the fallback; the tests
check that both give the same text and that the fast path is the one taken.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable
from typing import Any


def compact_encoder(default: Callable[[Any], Any]) -> Callable[[Any], str]:
    """`json.dumps(value, separators=(",", ":"), default=default)` as a reusable function."""
    documented = json.JSONEncoder(separators=(",", ":"), default=default, check_circular=False)
    make_scanner = getattr(json.encoder, "c_make_encoder", None)
    if make_scanner is None:
        return documented.encode
    scan = make_scanner(
        None, default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True
    )
    return lambda value: "".join(scan(value, 0))


def uses_c_scanner() -> bool:
    """Whether this interpreter offers the C scanner `compact_encoder` builds on."""
    return getattr(json.encoder, "c_make_encoder", None) is not None
