"""Byte sizes as people write them in settings: ``4096``, ``512MB``, ``2GiB``."""

from __future__ import annotations

import math

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_UNITS |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_bytes(text: str) -> int:
    """``"512MB"`` → 512000000, ``"2GiB"`` → 2147483648, ``"4096"`` → 4096; raises ``ValueError``.

    Examples
    --------
    >>> parse_bytes("1.5 KiB"), parse_bytes("3MB")
    (1536, 3000000)
    """
    number = text.strip().upper().rstrip("BIKMGT ")
    unit = text.strip().upper()[len(number) :].replace(" ", "")
    try:
        amount = float(number)
    except ValueError:
        raise ValueError(f"not a size: {text!r} (use bytes or a unit such as 512MB, 2GiB)") from None
    if unit not in _UNITS or not math.isfinite(amount):
        raise ValueError(f"not a size: {text!r} (use bytes or a unit such as 512MB, 2GiB)")
    return int(amount * _UNITS[unit])
