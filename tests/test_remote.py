"""The one loop that turns a server job's events into step layers (paint --server, the viewer)."""

import numpy as np
import pytest
from paintstep.cli.remote import step_layers
from paintstep.wire.client import Accepted, Done, Progress, ServerError, ServerLost, Step
from paintstep.wire.errors import PaintError
from paintstep.wire.protocol import RawImage


def raw(pixels: np.ndarray) -> RawImage:
    return RawImage(pixels.tobytes(), pixels.shape[1], pixels.shape[0])


def step(index: int) -> Step:
    pixels = np.full((2, 3, 4), index, np.uint8)
    return Step("j", index, 2, index, 1, raw(pixels), raw(pixels[:1, :1]))


def test_steps_come_as_layers_in_order_and_the_rest_goes_to_its_handlers():
    seen = []
    events = [Accepted("j", 1, 2, "queued"), Progress("j", 0.5, "planning"), step(1), step(2)]
    events.append(Done("j", "finished", 2))
    layers = step_layers(lambda: iter(events), seen.append, seen.append, seen.append)
    first = next(layers)
    assert [type(e).__name__ for e in seen] == ["Accepted", "Progress"]  # as they came
    rest = list(layers)
    assert [layer.index for layer in [first, *rest]] == [1, 2]
    assert (first.x, first.y, first.pixels.shape) == (1, 1, (2, 3, 4))
    assert np.all(rest[0].pixels == 2) and rest[0].thumbnail.shape == (1, 1, 4)
    assert isinstance(seen[-1], Done) and seen[-1].steps == 2


@pytest.mark.parametrize("error", [ServerError("busy", "The server is busy."), ServerLost("Lost.")])
def test_a_refusal_or_a_lost_server_is_a_paint_error_with_its_sentence(error):
    def events():
        yield step(1)
        raise error

    layers = step_layers(events)
    assert next(layers).index == 1
    with pytest.raises(PaintError, match=str(error)):
        next(layers)
