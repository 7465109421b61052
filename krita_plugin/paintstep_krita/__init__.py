"""Paintstep's Krita plugin.

Krita's API is touched only in `document.py`; everything else sees plain bytes and numbers and
runs without Krita (the tests replace Krita with a fake). Named `paintstep_krita` so that it can
never shadow the `paintstep` library.
"""
