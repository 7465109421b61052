"""A job on a Paintstep server as the step layers it paints.

The one loop that turns a client's events (`Client.generate_request`, `Client.fetch`) into
`StepLayer`s, for `paintstep paint --server` and for the viewer following a job. The job's
other events go to the caller's handlers as they come; a server's refusal, or a server lost,
is a `PaintError` with the client's sentence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..process import PaintError, StepLayer
from ..wire.client import Accepted, Done, Progress, ServerError, ServerLost, Step

Handler = Callable[[Any], None]


def step_layers(
    events: Callable[[], Iterable[Accepted | Progress | Step | Done]],
    accepted: Handler | None = None,
    progress: Handler | None = None,
    done: Handler | None = None,
) -> Iterator[StepLayer]:
    """The layers of the job that `events()` starts or fetches, in order, as they come."""
    try:
        for event in events():
            if isinstance(event, Step):
                yield event.to_layer()
            elif isinstance(event, Accepted) and accepted is not None:
                accepted(event)
            elif isinstance(event, Progress) and progress is not None:
                progress(event)
            elif isinstance(event, Done) and done is not None:
                done(event)
    except (ServerError, ServerLost) as error:
        raise PaintError(str(error)) from None
