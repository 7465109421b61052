"""The strokes engine: a painter's process from brush strokes, on the CPU, with no weights.

The plan follows Hertzmann's painterly rendering (1998): for brushes from large to small (down to
about 1 px), compare the canvas with the goal blurred to that brush's scale, and where a grid cell
is still wrong, start a stroke at its worst pixel that follows the image's contours
(perpendicular to the gradient) until the canvas there is already closer to the goal than the
stroke's colour. The largest brush lays in all of the paper loosely; detail brushes go only where
the goal has detail. Glazes then close what the strokes left, a part at a time, so the process
ends on the goal without a step that pastes it in. Each brush size gets steps by how far it takes
the error down on a log scale, and each step takes away a like part of what is left.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from paintstep.engines import Engine, EngineOption, Report
from paintstep.process import (
    BAND_ROWS,
    PaintError,
    PaintRequest,
    StepLayer,
    Thumbnail,
    blend_over,
    blend_words,
    composite,
    crop_to_paint,
)
from PIL import Image, ImageFilter

from .brush import (
    Strokes,
    premultiply,
    render_layer,
)

MAX_POINTS = 12  # control points per stroke, one brush radius apart
MIN_POINTS = 3
CURVATURE = 0.7  # 1 follows the contours exactly, lower values smooth the strokes
# A stroke is laid only when it brings the canvas closer to the goal by at least this share of
# what it changes: a painter does not churn a passage that is nearly right.
WORTH = 0.3
COLOUR_LIMIT = 0.4  # a stroke ends where the goal's colour is this far (0-2) from its own
DETAIL_COLOUR_LIMIT = 0.12  # and a detail stroke sooner: its colour is right all along


@dataclass(frozen=True)
class Settings:
    detail: float
    opacity: float
    jitter: float
    tolerance: int
    threshold: float


class StrokesEngine(Engine):
    name = "strokes"
    description = "Brush strokes planned coarse to fine, on the CPU; no weights needed."
    options = (
        EngineOption(
            "detail", float, 1.0, "Finer (higher) or coarser (lower) smallest brush.", 0.25, 4.0
        ),
        EngineOption("opacity", float, 0.85, "How opaque each brush stroke is.", 0.2, 1.0),
        EngineOption("jitter", float, 0.05, "How much stroke colours vary.", 0.0, 0.3),
        EngineOption(
            "tolerance",
            int,
            4,
            "How far (0-255) a pixel may be from the target and still count as finished.",
            0,
            64,
        ),
        EngineOption(
            "threshold",
            float,
            0.05,
            "How wrong (0-1) an area must be before a brush paints it.",
            0.005,
            0.5,
        ),
    )

    def paint(
        self,
        request: PaintRequest,
        cancel: threading.Event | None = None,
        report: Report | None = None,
    ) -> Iterator[StepLayer]:
        request.validate()
        settings = Settings(**self.settings(request))
        cancel = cancel or threading.Event()
        return paint_process(request, settings, cancel)


def paint_process(
    request: PaintRequest, settings: Settings, cancel: threading.Event
) -> Iterator[StepLayer]:
    frame = request.first_frame()
    # The target is laid over the canvas: where it is transparent, the canvas shows. (Paint only
    # adds, so it could not take opacity away there anyway.)
    goal = request.goal
    if goal[..., 3].min() < 255:  # an opaque target is itself over anything: no copy needed
        goal = blend_over(frame, goal)
    paintable = paintable_region(frame, goal, request.mask, settings.tolerance)
    if not paintable.any():
        if request.target is None:
            raise PaintError(
                "The picture looks like the blank paper it would start from, so there is "
                "nothing to paint; choose another --paper or another picture."
            )
        raise PaintError(
            "The canvas already matches the target everywhere it may be painted, so there is "
            "nothing left to paint; give a different target or a larger mask."
        )
    height, width = frame.shape[:2]
    radii = brush_radii(width, height, settings.detail)
    shares, ratios, errors = estimate_shares(frame, goal, paintable, radii, settings, request.seed)
    painter = Painter(frame, goal, paintable, settings, np.random.default_rng(request.seed))
    counts = deal_steps(request.steps, shares)
    index, spare = 0, 0
    for level, radius in enumerate(radii):
        if cancel.is_set():
            return
        finest = level == len(radii) - 1
        count = counts[level] + spare
        if count == 0:
            continue
        plan = painter.plan(radius, finest, lay_in=level == 0, first=index == 0, count=count)
        # A size with fewer strokes than steps hands the rest on to the next, and one that
        # would take away next to nothing of the error left hands on all of them.
        spare = 0 if finest else max(0, count - len(plan.items))
        if not finest and plan.amounts.sum() < LEAST_PROGRESS * errors[level]:
            spare = count
        count -= spare
        if count == 0:
            continue
        bounds = split_by_progress(plan.amounts, count, ratios[level])
        for run in range(count):
            if cancel.is_set():
                return
            index += 1
            items = plan.items[bounds[run] : bounds[run + 1]]
            yield painter.paint(plan, items, index, last=index == request.steps)


def deal_steps(steps: int, shares: list[float]) -> list[int]:
    """Steps for each brush size. The finest (with the glazes) gets its share of the steps;
    every other size with a share gets MIN_STEPS (fewer when steps are few; then the sizes
    with the largest shares), and the rest in proportion to the shares."""
    used = [level for level, share in enumerate(shares[:-1]) if share > 0]
    finest = len(shares) - 1
    counts = [0] * len(shares)
    counts[finest] = max(1, round(steps * shares[-1] / sum(shares)))
    steps -= counts[finest]
    if not used:
        counts[finest] += steps
        return counts
    if steps < len(used):
        for level in sorted(used, key=lambda level: -shares[level])[:steps]:
            counts[level] = 1
        return counts
    base = min(MIN_STEPS, steps // len(used))
    wanted = np.array([shares[level] for level in used])
    wanted = (steps - base * len(used)) * wanted / wanted.sum()
    extra = np.floor(wanted).astype(int)
    for i in np.argsort(extra - wanted)[: steps - base * len(used) - extra.sum()]:
        extra[i] += 1
    for level, more in zip(used, extra):
        counts[level] = base + int(more)
    return counts


LEAST_SHARE = 0.05  # of the error on a log scale: what a size must take away to be painted
LEAST_PROGRESS = 0.1  # a size that would take less of the error away than this is left out
MIN_STEPS = 2  # so that no brush size paints all of the canvas in one step


def estimate_shares(
    frame: np.ndarray,
    goal: np.ndarray,
    paintable: np.ndarray,
    radii: list[float],
    settings: Settings,
    seed: int,
) -> tuple[list[float], list[float], list[float]]:
    """How much of the process each brush size is, from a quick run at a small size.

    Returns each size's share, the ratio of the error left after it to the error before it,
    and the error before it (summed over the paintable pixels, as at full size).
    A size's share is how much it takes the error down on a log scale, as an eye judges
    progress: steps are dealt so that each takes away a like part of what is left. A size gets
    no share (0) when the next smaller brush gets the picture closer to the goal for each pixel
    it paints: on a canvas already blocked in, big brushes would only churn what the artist
    did. Where that leaves out the largest size, the second goes too.
    """
    height, width = frame.shape[:2]
    scale = min(1.0, ESTIMATE_SIDE / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if scale < 1:
        frame = np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BOX))
        goal = np.asarray(Image.fromarray(goal).resize(size, Image.Resampling.BOX))
        small = Image.fromarray(paintable.astype(np.uint8) * 255).resize(size)
        paintable = np.asarray(small) > 127
    area = max(int(paintable.sum()), 1)
    painter = Painter(frame, goal, paintable, settings, np.random.default_rng(seed), preview=True)
    # The error a finished process is left with: about half the tolerance on each pixel.
    floor = max(settings.tolerance, 1) / 2 / 255 * area
    errors = [float(colour_distance(premultiply(frame), painter.goal_pm)[paintable].sum())]
    progress = []
    for level, radius in enumerate(radii):
        finest = level == len(radii) - 1
        plan = painter.plan(radius * scale, finest, lay_in=level == 0, first=level == 0)
        before = painter.frame.copy()
        painter.paint(plan, plan.items, 0, last=finest)
        changed = np.count_nonzero(np.any(painter.frame != before, axis=2))
        error = colour_distance(premultiply(painter.frame), painter.goal_pm)[paintable].sum()
        progress.append((errors[-1] - float(error)) / max(changed, 1))
        errors.append(max(float(error), floor))
    errors = [max(error, floor) for error in errors]
    ratios = [min(1.0, after / before) for before, after in zip(errors, errors[1:])]
    # A size the preview can see (a brush of a pixel or more there) and finds next to nothing
    # for is left out; one it cannot see keeps a little share, for the picture's fine detail.
    shares = [
        0.0
        if radius * scale >= 1 and -np.log(ratio) < LEAST_SHARE
        else max(-np.log(ratio), LEAST_SHARE)
        for ratio, radius in zip(ratios, radii)
    ]
    for level in range(len(radii) - 2):
        if progress[level] < progress[level + 1]:
            shares[level] = 0.0
    if shares[0] == 0.0 and len(radii) > 3:
        # The largest brush finds the large shapes already there: a blocked-in canvas. The
        # next size's wide semi-opaque strokes then mostly churn the block-in: on the bundled
        # photos' blurred block-ins, a quarter of the way in they had taken away 39-58 % of
        # the structure error, against 53-80 % when refining starts at the size below
        # (docs/benchmarks.md).
        shares[1] = 0.0
    full = float(np.count_nonzero(paintable)) if scale == 1 else area / scale**2
    return shares, ratios, [error * full / area for error in errors[:-1]]


ESTIMATE_SIDE = 192  # px: the size of the quick run that estimates each brush's share of paint


@dataclass
class LevelPlan:
    """One brush size's part of the process, in painting order.

    items[i] >= 0 is a stroke (an index into strokes); items[i] < 0 finishes area -1 - items[i]
    of the painter's area map. amounts[i] is how much paint item i lays down.
    """

    strokes: Strokes
    items: np.ndarray
    amounts: np.ndarray


class Painter:
    """The canvas as the process paints it, and how each step is planned and painted."""

    def __init__(
        self,
        frame: np.ndarray,
        goal: np.ndarray,
        paintable: np.ndarray,
        settings: Settings,
        rng: np.random.Generator,
        preview: bool = False,
    ) -> None:
        self.frame = frame.copy()
        self.goal = np.ascontiguousarray(goal)
        # Paint only adds opacity: on an opaque start with an opaque goal, all stays opaque.
        self.opaque = frame[..., 3].min() == 255 and goal[..., 3].min() == 255
        self.goal_pm = premultiply(goal)
        self.paintable = paintable
        self.settings = settings
        self.rng = rng
        self.preview = preview
        height, width = frame.shape[:2]
        self.thumbnail = None if preview else Thumbnail(self.frame)
        self.detail_map: np.ndarray | None = None
        self.bands = GLAZE_BANDS

    def plan(
        self,
        radius: float,
        finest: bool,
        lay_in: bool = False,
        first: bool = False,
        count: int = 1,
    ) -> LevelPlan:
        """The strokes of one brush size, to be dealt into `count` steps. The `lay_in` (the
        largest brush on paper) covers the canvas all over, the palest passages too, with
        strokes closer together so that they overlap, in no order of place; the `first` size
        painted goes on semi-transparent. The finest size ends with the glazes."""
        canvas = premultiply(self.frame)
        # A detail brush aims at the goal itself: blurred by a pixel it would be much the same.
        reference = self.goal_pm if radius <= DETAIL_RADIUS else blur(self.goal_pm, radius)
        threshold = self.settings.tolerance / 255 if lay_in else self.settings.threshold
        spacing = radius if lay_in else 2 * radius
        opacity = self.settings.opacity * (FIRST_OPACITY if first else 1.0)
        # Detail brushes go only where the goal itself has detail: elsewhere what the larger
        # brushes left is smooth enough for the glazes, and the cost follows the detail.
        where = self.paintable & self.detailed() if radius <= DETAIL_RADIUS else self.paintable
        strokes, gain, progress = plan_level(
            canvas,
            reference,
            where,
            radius,
            self.settings,
            self.rng,
            threshold,
            spacing,
            opacity,
        )
        if not finest:
            if lay_in:
                order = self.rng.permutation(len(strokes))
                strokes, progress = strokes.take(order), progress[order]
                painted = as_painted(strokes, progress, canvas.shape[:2])
                return LevelPlan(strokes, np.arange(len(strokes)), painted)
            order = painting_order(strokes, gain, self.rng)
            return LevelPlan(strokes.take(order), np.arange(len(strokes)), progress[order])
        # The finest strokes go shape by shape too, then the glazes: each takes every pixel
        # still more than its level off half the way to the goal, so that the residual shrinks
        # all over at once and no step moves a pixel far onto the goal. What each glaze does is
        # guessed from what is off before the strokes.
        # Each glaze goes on in bands of rows, so that steps can share them out: at least one
        # item a step.
        residual = pixel_difference(canvas, self.goal_pm)
        residual[~self.paintable] = 0
        self.bands = max(GLAZE_BANDS, -(-count // len(GLAZES)))
        glazes = []
        for level in GLAZES:
            off = np.where(residual > level, residual, 0).astype(np.float32)
            for part in range(self.bands):
                _, top, _, bottom = self.band(part)
                glazes.append(float(off[top:bottom].sum()) / 2 / 255)
        order = painting_order(strokes, gain, self.rng)
        items = np.concatenate([order, -1 - np.arange(len(glazes))])
        return LevelPlan(strokes, items, np.concatenate([progress[order], glazes]))

    def detailed(self) -> np.ndarray:
        """Where the goal has detail of a few pixels: it differs from itself blurred."""
        if self.detail_map is None:
            difference = pixel_difference(self.goal_pm, blur(self.goal_pm, DETAIL_RADIUS))
            self.detail_map = spread(difference > DETAIL_CONTRAST, np.maximum)
        return self.detail_map

    def paint(self, plan: LevelPlan, items: np.ndarray, index: int, last: bool) -> StepLayer:
        """Paint these items as step `index`; the last step also finishes all that is left."""
        height, width = self.paintable.shape
        batch = plan.strokes.take(items[items >= 0])
        glazes = np.sort(-1 - items[items < 0])
        x0, y0, x1, y1 = (0, 0, width, height) if last else batch.bounds(width, height)
        for glaze in glazes:
            x0, y0, x1, y1 = union((x0, y0, x1, y1), self.band(glaze % self.bands))
        x0, y0, x1, y1 = (int(v) for v in (x0, y0, x1, y1))
        window = (slice(y0, y1), slice(x0, x1))
        frame = self.frame[window]
        layer = render_layer(batch, x0, y0, x1 - x0, y1 - y0)
        np.multiply(layer[..., 3], self.paintable[window], out=layer[..., 3])
        if not self.opaque:
            limit_alpha(layer, frame, self.goal[window])
        if last or glazes.size:
            # Only pixels that are off, or that this step paints, can need a glaze.
            residual = pixel_difference(premultiply(frame), self.goal_pm[window])
            painted = layer[..., 3] > 0
        for glaze in glazes:
            level = GLAZES[glaze // self.bands]
            band = np.zeros(height, bool)
            _, top, _, bottom = self.band(glaze % self.bands)
            band[top:bottom] = True
            where = self.paintable[window] & band[window[0], None]
            where &= (residual > level) | painted
            glaze_layer(layer, x0, y0, self.frame, self.goal, where, level, halfway=True)
        if last:
            level = self.settings.tolerance
            where = self.paintable[window] & ((residual > level) | painted)
            glaze_layer(layer, x0, y0, self.frame, self.goal, where, level)
        pixels, x, y = crop_to_paint(layer, x0, y0)
        step = StepLayer(index, x, y, np.ascontiguousarray(pixels))
        composite(self.frame, step)
        if self.preview:
            return step
        small = self.thumbnail.update(self.frame, x, y, x + step.width, y + step.height)
        return StepLayer(index, x, y, step.pixels, small)

    def band(self, part: int) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of the band of rows that part `part` of a glaze covers."""
        height, width = self.paintable.shape
        return (0, part * height // self.bands, width, (part + 1) * height // self.bands)


def union(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    if a[0] == a[2] or a[1] == a[3]:
        return b
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def paintable_region(
    frame: np.ndarray, goal: np.ndarray, mask: np.ndarray | None, tolerance: int
) -> np.ndarray:
    """Where the brush may paint: inside the mask, and not where the canvas is finished.

    A pixel is finished when it is within `tolerance` of the goal; isolated finished specks
    (a blurred block-in that happens to match) are painted over like their surroundings.
    """
    difference = pixel_difference(premultiply(frame), premultiply(goal))
    finished = spread(spread(difference <= tolerance, np.minimum), np.maximum)
    paintable = ~finished & (difference > 0)
    if mask is not None:
        paintable &= mask.astype(bool)
    return paintable


def spread(image: np.ndarray, pick) -> np.ndarray:
    """A 3 x 3 minimum (pick=np.minimum) or maximum filter, edges repeated, as Pillow's
    MinFilter(3) and MaxFilter(3) do: in rows then in columns, 50 times faster at 4096 px."""
    out = image.copy()
    pick(out[1:], image[:-1], out=out[1:])
    pick(out[:-1], image[1:], out=out[:-1])
    rows = out.copy()
    pick(out[:, 1:], rows[:, :-1], out=out[:, 1:])
    pick(out[:, :-1], rows[:, 1:], out=out[:, :-1])
    return out


def brush_radii(width: int, height: int, detail: float) -> list[float]:
    """Brush radii from the largest (blocking in) to the smallest (details), halving each time;
    the last is the finishing pass."""
    longest = max(width, height)
    largest = max(2.0, longest / 16)
    smallest = max(0.5, SMALLEST_RADIUS / detail)
    radii = [largest]
    while radii[-1] / 2 >= smallest * 0.75:
        radii.append(radii[-1] / 2)
    return radii


FIRST_OPACITY = 0.6  # the first brush size painted goes on this much thinner: a loose lay-in
DETAIL_RADIUS = 2.0  # px: brushes this small paint detail, not shapes
DETAIL_CONTRAST = 16  # levels: the goal has detail where it is this far from itself blurred
GLAZE = 24  # a pixel this close (0-510, premultiplied RGBA distance) is left to the glaze
SMALLEST_RADIUS = 1.0  # px: the finest brush reaches a picture's own detail at every size

# A glaze takes each pixel more than this far off (largest premultiplied channel, 0-255) half
# the way to the goal; after them every pixel is within the last, and the last step's glaze
# closes the few levels left.
GLAZES = (32, 16, 8, 4)
GLAZE_BANDS = 4  # bands of rows a glaze goes on in, at the least


def plan_level(
    canvas: np.ndarray,
    reference: np.ndarray,
    paintable: np.ndarray,
    radius: float,
    settings: Settings,
    rng: np.random.Generator,
    threshold: float,
    spacing: float,
    opacity: float,
) -> tuple[Strokes, np.ndarray, np.ndarray]:
    """Strokes of one brush size, wherever the canvas is still far from the reference, and how
    much closer each brings it.

    Detail brushes carry the goal's colour unvaried.
    """
    # A cell needs this brush when the canvas is off at the brush's own scale: a smooth block-in
    # already right in its large shapes gets no big strokes, only the detail it lacks.
    size = max(2, int(round(spacing)))
    error = squared_distance(canvas, reference)
    error *= paintable
    detail = radius <= DETAIL_RADIUS
    if detail:
        # Detail brushes go only where some pixel is still visibly off: what is closer than
        # that is left to the glazes.
        wanted = cell_max(error, size) > GLAZE**2
    else:
        seen = colour_distance(
            box_reduce(canvas, "RGBa", size), box_reduce(reference, "RGBa", size)
        )
        seen *= box_reduce(paintable.astype(np.uint8) * 255, "L", size) / np.float32(255)
        wanted = seen > threshold
    starts = worst_cells(error, wanted, size)
    if len(starts) == 0:
        nothing = np.zeros(0, np.float32)
        return (
            Strokes(
                np.zeros((0, 1, 2), np.float32),
                np.zeros(0, np.int64),
                np.zeros((0, 4), np.float32),
                nothing,
            ),
            nothing,
            nothing,
        )
    start_color = reference[starts[:, 1], starts[:, 0]].astype(np.float32) / 255.0
    rgba = np.concatenate(
        [start_color[:, :3] / np.maximum(start_color[:, 3:], 1e-6), start_color[:, 3:]], 1
    )
    limit = DETAIL_COLOUR_LIMIT if detail else COLOUR_LIMIT
    points, count = trace_strokes(starts, rgba, canvas, reference, paintable, radius, rng, limit)
    # The brushful is mixed for the whole stroke: the goal's mean colour along its path.
    color = path_mean(reference, points, count) / 255.0
    straight = color[:, :3] / np.maximum(color[:, 3:], 1e-6)
    # A painter mixes each brushful a little differently: vary value and hue per stroke.
    jitter = 0.0 if detail else settings.jitter
    straight = straight * np.exp(rng.normal(0, jitter, (len(starts), 1)))
    straight += rng.normal(0, jitter / 2, (len(starts), 1))
    # Hue varies only as much as the colour has hue: greys stay grey.
    chroma = straight.max(axis=1, keepdims=True) - straight.min(axis=1, keepdims=True)
    straight += rng.normal(0, jitter, straight.shape) * np.minimum(chroma * 2, 0.5)
    # Reflected into 0-1 rather than clipped, so that blacks and whites vary too.
    straight = 1 - np.abs(1 - np.abs(straight))
    opacity = opacity * rng.uniform(0.85, 1.0, len(starts))
    opacity = opacity * color[:, 3]
    rgba = np.concatenate([straight, opacity[:, None]], axis=1).astype(np.float32)
    strokes = Strokes(points, count, rgba, np.full(len(starts), radius, np.float32))
    gain, change = improvement(strokes, canvas, reference)
    keep = np.flatnonzero(gain > WORTH * change)
    strokes = strokes.take(keep)
    # How much closer a stroke brings the picture: the pixels it covers times how much closer
    # each gets, in the units of colour_distance.
    samples = 3 * strokes.count.astype(np.float32)
    area = strokes.paint_amount() / strokes.color[:, 3].clip(1e-6)
    return strokes, gain[keep], area * gain[keep] / samples / 255


def as_painted(strokes: Strokes, progress: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Each stroke's progress when the strokes are laid in this order: where earlier strokes
    of the same pass already put paint, a stroke gains only what they left."""
    height, width = shape
    cell = max(1.0, float(strokes.radius.max(initial=1.0)))
    grid_h, grid_w = int(np.ceil(height / cell)), int(np.ceil(width / cell))
    left = np.ones((grid_h, grid_w))
    out = np.empty(len(strokes))
    for i in range(len(strokes)):
        points = strokes.points[i, : strokes.count[i]]
        cx = np.clip((points[:, 0] / cell).astype(np.int64), 0, grid_w - 1)
        cy = np.clip((points[:, 1] / cell).astype(np.int64), 0, grid_h - 1)
        out[i] = progress[i] * left[cy, cx].mean()
        left[cy, cx] *= 1 - strokes.color[i, 3]
    return out


def cell_max(values: np.ndarray, size: int) -> np.ndarray:
    """The largest value in each size x size cell (cells at the edges cover what is left)."""
    height, width = values.shape
    rows, cols = -(-height // size), -(-width // size)
    padded = np.zeros((rows * size, cols * size), values.dtype)
    padded[:height, :width] = values
    return padded.reshape(rows, size, cols, size).max(axis=(1, 3))


def path_mean(image: np.ndarray, points: np.ndarray, count: np.ndarray) -> np.ndarray:
    """(n, channels) mean of the image at the used points of each stroke."""
    height, width = image.shape[:2]
    ix = np.clip(np.rint(points[..., 0]).astype(np.int64), 0, width - 1)
    iy = np.clip(np.rint(points[..., 1]).astype(np.int64), 0, height - 1)
    used = (np.arange(points.shape[1])[None, :] < count[:, None]).astype(np.float32)
    return (image[iy, ix] * used[..., None]).sum(axis=1) / count[:, None]


def improvement(
    strokes: Strokes, canvas: np.ndarray, reference: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """How much each stroke brings the canvas closer to the reference, and how much it changes.

    Judged along each stroke's path and along both of its edges, so that a wide stroke across a
    sharp change of colour counts what it smears.
    """
    height, width = canvas.shape[:2]
    points = strokes.points
    heading = np.diff(points, axis=1, append=points[:, -1:] + points[:, -1:] - points[:, -2:-1])
    if points.shape[1] == 1:
        heading = np.zeros_like(points)
        heading[..., 0] = 1
    heading /= np.maximum(np.linalg.norm(heading, axis=2, keepdims=True), 1e-6)
    across = (
        np.stack([-heading[..., 1], heading[..., 0]], axis=2)
        * (0.7 * strokes.radius)[:, None, None]
    )
    alpha = strokes.color[:, 3:]
    paint = np.concatenate([strokes.color[:, :3] * alpha, alpha], axis=1)[:, None, :] * 255
    used = np.arange(points.shape[1])[None, :] < strokes.count[:, None]
    gain = np.zeros(len(strokes), np.float32)
    change = np.zeros(len(strokes), np.float32)
    for offset in (0.0, 1.0, -1.0):
        where = points + offset * across
        ix = np.clip(np.rint(where[..., 0]).astype(np.int64), 0, width - 1)
        iy = np.clip(np.rint(where[..., 1]).astype(np.int64), 0, height - 1)
        wanted = reference[iy, ix].astype(np.float32)
        before = canvas[iy, ix].astype(np.float32)
        after = paint + (1 - alpha[:, None, :]) * before
        better = np.linalg.norm(wanted - before, axis=2) - np.linalg.norm(wanted - after, axis=2)
        gain += (better * used).sum(axis=1)
        change += (np.linalg.norm(after - before, axis=2) * used).sum(axis=1)
    return gain, change


def squared_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel squared distance of two RGBA uint8 images, as int32 (0..4 * 255**2)."""
    total = np.zeros(a.shape[:2], np.int32)
    for channel in range(4):
        d = a[..., channel].astype(np.int16)
        d -= b[..., channel]
        # d * d is at most 65025: it overflows int16 but is exact read back as uint16.
        np.multiply(d, d, out=d, dtype=np.int16, casting="unsafe")
        total += d.view(np.uint16)
    return total


def colour_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel Euclidean distance of two premultiplied RGBA uint8 images, in 0..2."""
    distance = np.zeros(a.shape[:2], np.float32)
    for channel in range(4):
        d = a[..., channel].astype(np.float32) - b[..., channel]
        distance += d * d
    np.sqrt(distance, out=distance)
    distance /= 255.0
    return distance


def box_reduce(image: np.ndarray, mode: str, size: int) -> np.ndarray:
    """The mean of each size x size cell (cells at the edges cover what is left)."""
    return np.asarray(Image.fromarray(image, mode).reduce(size))


def worst_cells(error: np.ndarray, wanted: np.ndarray, size: int) -> np.ndarray:
    """(x, y) of the worst pixel of each size x size cell where `wanted` (one per cell) is true."""
    height, width = error.shape
    chosen = np.argwhere(wanted)
    if len(chosen) == 0:
        return np.zeros((0, 2), np.int64)
    offsets = np.arange(size)
    rows = np.minimum(chosen[:, :1] * size + offsets, height - 1)
    cols = np.minimum(chosen[:, 1:] * size + offsets, width - 1)
    cells = error[rows[:, :, None], cols[:, None, :]].reshape(len(chosen), -1)
    worst = cells.argmax(axis=1)
    y = rows[np.arange(len(chosen)), worst // size]
    x = cols[np.arange(len(chosen)), worst % size]
    return np.stack([x, y], axis=1)


def trace_strokes(
    starts: np.ndarray,
    rgba: np.ndarray,
    canvas: np.ndarray,
    reference: np.ndarray,
    paintable: np.ndarray,
    radius: float,
    rng: np.random.Generator,
    limit: float = COLOUR_LIMIT,
) -> tuple[np.ndarray, np.ndarray]:
    """Grow all strokes at once along the contours of the reference (Hertzmann's curved strokes),
    each until the goal's colour is `limit` (0-2) from its own."""
    height, width = paintable.shape
    n = len(starts)
    # The reference is blurred to the brush's scale, so its gradient can be taken at a quarter
    # of the brush radius without losing anything.
    factor = max(1, int(radius // 4))
    small = Image.fromarray(reference, "RGBa")
    if factor > 1:
        small = small.reduce(factor)
    luminance = Image.fromarray(np.asarray(small)[..., :3].copy(), "RGB").convert("L")
    luminance = np.asarray(luminance, np.float32)
    # np.gradient needs two pixels a side: a picture one pixel thin is padded.
    short = (max(0, 2 - luminance.shape[0]), max(0, 2 - luminance.shape[1]))
    luminance = np.pad(luminance, ((0, short[0]), (0, short[1])), "edge")
    grad_y, grad_x = np.gradient(luminance)
    grid_h, grid_w = grad_x.shape
    stroke_pm = np.concatenate([rgba[:, :3] * rgba[:, 3:], rgba[:, 3:]], axis=1) * 255.0
    points = np.empty((n, MAX_POINTS, 2), np.float32)
    position = starts.astype(np.float32)
    points[:, 0] = position
    count = np.ones(n, np.int64)
    alive = np.ones(n, bool)
    angle = rng.uniform(0, 2 * np.pi, n)
    previous = np.stack([np.cos(angle), np.sin(angle)], axis=1).astype(np.float32)
    for k in range(1, MAX_POINTS):
        ix = np.clip((position[:, 0] / factor).astype(np.int64), 0, grid_w - 1)
        iy = np.clip((position[:, 1] / factor).astype(np.int64), 0, grid_h - 1)
        gx, gy = grad_x[iy, ix], grad_y[iy, ix]
        magnitude = np.hypot(gx, gy)
        flat = magnitude < 1e-3
        direction = np.stack([-gy, gx], axis=1) / np.maximum(magnitude, 1e-6)[:, None]
        direction[flat] = previous[flat]
        flip = (direction * previous).sum(axis=1) < 0
        direction[flip] *= -1
        if k > 1:
            direction = CURVATURE * direction + (1 - CURVATURE) * previous
            direction /= np.maximum(np.linalg.norm(direction, axis=1), 1e-6)[:, None]
        step = position + radius * direction
        inside = (step[:, 0] >= 0) & (step[:, 0] <= width - 1)
        inside &= (step[:, 1] >= 0) & (step[:, 1] <= height - 1)
        sx = np.clip(np.rint(step[:, 0]).astype(np.int64), 0, width - 1)
        sy = np.clip(np.rint(step[:, 1]).astype(np.int64), 0, height - 1)
        wanted = reference[sy, sx].astype(np.float32)
        canvas_error = np.linalg.norm(wanted - canvas[sy, sx], axis=1)
        stroke_error = np.linalg.norm(wanted - stroke_pm, axis=1)
        stop = ~inside | ~paintable[sy, sx]
        # Stop where the canvas is already closer than this brushful, or the colour has moved on.
        stop |= (k >= MIN_POINTS) & (canvas_error < stroke_error)
        stop |= stroke_error > limit * 255
        alive &= ~stop
        position = np.where(alive[:, None], step, position)
        points[:, k] = position
        count += alive
        previous = direction
        if not alive.any():
            points[:, k + 1 :] = position[:, None]
            break
    return points, count


def painting_order(
    strokes: Strokes, gain: np.ndarray, rng: np.random.Generator, groups: int = 12
) -> np.ndarray:
    """The order a painter lays one brush size down in: shape by shape, what matters most first.

    Strokes are grouped by where they are and what colour they carry (k-means), so that a group
    is one patch of one colour, the way a painter blocks in the background, then the cup. Groups
    go in order of how much closer they bring the picture; strokes within a group at random.
    """
    n = len(strokes)
    groups = min(groups, n)
    if groups < 2:
        return rng.permutation(n)
    scale = max(float(np.ptp(strokes.points[:, 0], axis=0).max()), 1.0)
    features = np.concatenate([strokes.points[:, 0] * 2 / scale, strokes.color[:, :3]], axis=1)
    centres = features[rng.choice(n, groups, replace=False)]
    for _ in range(8):
        distance = ((features[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        label = distance.argmin(axis=1)
        sizes = np.bincount(label, minlength=groups)
        sums = np.stack([np.bincount(label, features[:, i], groups) for i in range(5)], axis=1)
        centres = np.where(sizes[:, None] > 0, sums / np.maximum(sizes, 1)[:, None], centres)
    worth = np.bincount(label, gain, groups)
    rank = np.argsort(np.argsort(-worth))
    return np.argsort(rank[label] + rng.uniform(0, 0.999, n), kind="stable")


def split_by_progress(gain: np.ndarray, steps: int, ratio: float) -> list[int]:
    """Boundaries that deal items, in order, into `steps` runs that each take away a like
    part of the error left, when all of them together leave `ratio` of the error they found.

    Every run gets at least one item while there are items enough.
    """
    n = len(gain)
    total = float(gain.sum())
    cumulative = np.cumsum(gain)
    ratio = min(max(ratio, 1e-6), 1 - 1e-6)
    bounds = [0]
    for i in range(1, steps):
        share = (1 - ratio ** (i / steps)) / (1 - ratio)
        cut = int(np.searchsorted(cumulative, total * share, side="right"))
        cut = max(cut, bounds[-1] + 1)
        cut = min(cut, n - (steps - i))
        bounds.append(max(cut, bounds[-1]) if n >= steps else min(i, n))
    bounds.append(n)
    return bounds


def limit_alpha(layer: np.ndarray, below: np.ndarray, goal: np.ndarray) -> None:
    """Keep strokes off pixels that are not opaque and should end translucent (in place).

    Paint only adds opacity: a stroke there would use up the opacity that finishing needs to
    set the exact colour, so those pixels are left to the finishing alone.
    """
    keep_off = (below[..., 3] < 255) & (goal[..., 3] < 255)
    layer[..., 3][keep_off] = 0


def glaze_layer(
    layer: np.ndarray,
    x0: int,
    y0: int,
    frame: np.ndarray,
    goal: np.ndarray,
    where: np.ndarray,
    level: int,
    halfway: bool = False,
) -> None:
    """Add to the layer (placed at x0, y0), where the canvas would still be more than `level`
    off inside `where`, exactly what is missing; or, `halfway`, half of it on opaque pixels
    (all of it where that is at most twice `level` and a glaze). In place, touching the
    pixels inside `where` only."""
    layer_words = layer.view(np.uint32).reshape(-1)
    frame_words = frame.view(np.uint32).reshape(-1)
    goal_words = goal.view(np.uint32).reshape(-1)
    for top in range(0, where.shape[0], BAND_ROWS):
        rows, cols = np.nonzero(where[top : top + BAND_ROWS])
        if rows.size == 0:
            continue
        rows += top
        spots = (rows + y0) * frame.shape[1] + cols + x0
        local = rows * layer.shape[1] + cols
        below = np.take(frame_words, spots)
        wanted = np.take(goal_words, spots)
        after = blend_words(below, np.take(layer_words, local)).view(np.uint8).reshape(-1, 4)
        goal_pixels = wanted.view(np.uint8).reshape(-1, 4)
        difference = np.abs(premultiplied(after) - premultiplied(goal_pixels)).max(axis=1)
        off = difference > level
        if halfway:
            off &= (after[:, 3] == 255) & (goal_pixels[:, 3] == 255)
        if not off.any():
            continue
        below = below[off]
        goal_pixels = goal_pixels[off]
        if halfway:
            # Half the way; all of it where that is a small move anyway.
            middle = ((after[off].astype(np.int16) + goal_pixels) // 2).astype(np.uint8)
            near = difference[off] <= min(2 * level, GLAZE)
            goal_pixels = np.where(near[:, None], goal_pixels, middle)
        if (below >= np.uint32(0xFF000000)).all() and goal_pixels[:, 3].min() == 255:
            fix = goal_pixels  # opaque over opaque is itself
        else:
            fix = solve_over(below.view(np.uint8).reshape(-1, 4), goal_pixels)
        np.put(layer_words, local[off], np.ascontiguousarray(fix).view(np.uint32).reshape(-1))


def pixel_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel largest channel difference of two premultiplied RGBA uint8 images, uint8."""
    difference = np.zeros(a.shape[:2], np.uint8)
    for channel in range(4):
        high = np.maximum(a[..., channel], b[..., channel])
        high -= np.minimum(a[..., channel], b[..., channel])
        np.maximum(difference, high, out=difference)
    return difference


def premultiplied(pixels: np.ndarray) -> np.ndarray:
    """(n, 4) straight RGBA as premultiplied int16, rounded as Pillow and skia round."""
    out = pixels.astype(np.int16)
    if pixels[:, 3].min(initial=255) == 255:
        return out
    out[:, :3] = (pixels[:, :3].astype(np.uint16) * pixels[:, 3:] + 127) // 255
    return out


def solve_over(below: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Pixels that, composited over `below`, give `wanted` (as near as "over" can reach)."""
    da = below[:, 3:].astype(np.float32) / 255.0
    wa = wanted[:, 3:].astype(np.float32) / 255.0
    alpha = np.where(da >= 1.0, 1.0, np.clip((wa - da) / np.maximum(1.0 - da, 1e-6), 0, 1))
    alpha = np.where(wa >= 1.0, 1.0, alpha)
    below_rgb = below[:, :3] * da * (1 - alpha)
    rgb = (wanted[:, :3] * np.maximum(wa, alpha + da * (1 - alpha)) - below_rgb) / np.maximum(
        alpha, 1e-6
    )
    out = np.empty_like(wanted)
    out[:, :3] = np.clip(np.rint(rgb), 0, 255)
    out[:, 3:] = np.rint(alpha * 255)
    return out


def blur(image: np.ndarray, radius: float) -> np.ndarray:
    """The goal as a brush of this radius sees it: blurred by half the radius.

    Wide blurs run on a reduced copy and are scaled back up, which looks the same and is fast.
    """
    picture = Image.fromarray(image, "RGBa")
    sigma = radius / 2
    factor = int(sigma // 2)
    if factor < 2:
        return np.asarray(picture.filter(ImageFilter.GaussianBlur(sigma)))
    small = picture.reduce(factor).filter(ImageFilter.GaussianBlur(sigma / factor))
    return np.asarray(small.resize(picture.size, Image.Resampling.BILINEAR))
