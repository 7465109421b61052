"""The error every refusal of Paintstep raises (no dependencies, so the plugin can carry it)."""


class PaintError(ValueError):
    """A request that cannot be painted; the message is a sentence for a person."""
