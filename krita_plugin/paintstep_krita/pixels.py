"""Pixel bytes between Krita's layouts and Paintstep's straight RGBA, without numpy.

Krita's pixelData for an RGBA document is B, G, R, A (8-bit) or the same as little-endian
16-bit numbers; for a GRAYA document it is gray, alpha.
"""

from __future__ import annotations


class UnsupportedDocument(ValueError):
    """A document Paintstep cannot read; the message says what to do."""


def swap_red_blue(data: bytes) -> bytes:
    """BGRA <-> RGBA (the same swap both ways)."""
    pixels = bytearray(data)
    pixels[0::4], pixels[2::4] = pixels[2::4], pixels[0::4]
    return bytes(pixels)


def high_bytes(data: bytes) -> bytes:
    """8-bit values from little-endian 16-bit ones: the high byte of each."""
    return bytes(data[1::2])


def gray_to_rgba(data: bytes) -> bytes:
    """GRAYA (2 bytes a pixel) to RGBA."""
    pixels = bytearray(len(data) * 2)
    gray, alpha = data[0::2], data[1::2]
    pixels[0::4], pixels[1::4], pixels[2::4], pixels[3::4] = gray, gray, gray, alpha
    return bytes(pixels)


def to_rgba(data: bytes, model: str, depth: str) -> bytes:
    """Straight RGBA (8-bit) from a document's pixelData in its colour model and depth."""
    if depth == "U16":
        data, depth = high_bytes(data), "U8"
    if depth != "U8":
        raise UnsupportedDocument(
            f"Paintstep reads 8- and 16-bit documents, and this one is {depth}; convert it with "
            "Image > Convert Image Color Space (to 8- or 16-bit integer)."
        )
    if model == "RGBA":
        return swap_red_blue(data)
    if model == "GRAYA":
        return gray_to_rgba(data)
    raise UnsupportedDocument(
        f"Paintstep paints RGB or grayscale documents, and this one is {model}; convert it with "
        "Image > Convert Image Color Space (to RGB/Alpha)."
    )


def from_rgba(data: bytes, model: str, depth: str) -> bytes:
    """A document's pixel layout from straight RGBA (8-bit), for setPixelData.

    For a gray document the green channel stands for the gray (paint made from a gray canvas
    has equal channels; for colours it is close to their lightness)."""
    if model not in ("RGBA", "GRAYA") or depth not in ("U8", "U16"):
        raise UnsupportedDocument(
            f"Paintstep writes layers into RGB or gray documents of 8 or 16 bits, and this one "
            f"is {model} {depth}; convert it with Image > Convert Image Color Space."
        )
    if model == "RGBA":
        narrow = swap_red_blue(data)
    else:
        gray = bytearray(len(data) // 2)
        gray[0::2], gray[1::2] = data[1::4], data[3::4]
        narrow = bytes(gray)
    if depth == "U8":
        return narrow
    wide = bytearray(len(narrow) * 2)
    wide[0::2], wide[1::2] = narrow, narrow  # v * 257: the same value on 16 bits
    return bytes(wide)
