"""Paintstep: the rest of a painting's process, step by step, as layers."""

__version__ = "0.1.0"
