"""The plugin's pixel conversions, without Krita."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "krita_plugin"))

from paintstep_krita.pixels import (  # noqa: E402
    UnsupportedDocument,
    from_rgba,
    swap_red_blue,
    to_rgba,
)


def test_krita_bgra_becomes_rgba_and_back():
    bgra = bytes([1, 2, 3, 4, 5, 6, 7, 8])
    assert to_rgba(bgra, "RGBA", "U8") == bytes([3, 2, 1, 4, 7, 6, 5, 8])
    assert from_rgba(to_rgba(bgra, "RGBA", "U8"), "RGBA", "U8") == bgra
    assert swap_red_blue(swap_red_blue(bgra)) == bgra


def test_sixteen_bit_keeps_the_high_byte_and_writes_full_range():
    wide = bytes([0x00, 0x40, 0xFF, 0x80, 0x00, 0xC0, 0xFF, 0xFF])  # B G R A, little-endian
    assert to_rgba(wide, "RGBA", "U16") == bytes([0xC0, 0x80, 0x40, 0xFF])
    assert from_rgba(bytes([0xC0, 0x80, 0x40, 0xFF]), "RGBA", "U16") == bytes(
        [0x40, 0x40, 0x80, 0x80, 0xC0, 0xC0, 0xFF, 0xFF]
    )


def test_gray_becomes_rgba():
    assert to_rgba(bytes([90, 200, 10, 255]), "GRAYA", "U8") == bytes(
        [90, 90, 90, 200, 10, 10, 10, 255]
    )


@pytest.mark.parametrize("model, depth", [("CMYKA", "U8"), ("RGBA", "F32"), ("LABA", "U16")])
def test_other_colour_models_and_depths_are_refused_with_what_to_do(model, depth):
    with pytest.raises(UnsupportedDocument, match="Convert Image Color Space"):
        to_rgba(b"\0" * 8, model, depth)
