"""Exports of a result: animations of a range, contact sheets, OpenRaster layers."""

import io
import xml.etree.ElementTree as ElementTree
import zipfile

import av
import numpy as np
import pytest
from conftest import painted
from paintstep.exports import contact_sheet, export_animation, write_ora
from paintstep.process import StepLayer, composite
from paintstep.result import load_result
from paintstep.wire.errors import PaintError
from PIL import Image


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    return load_result(painted(tmp_path_factory.mktemp("result"), "astronaut", 96, 6))


def test_an_animation_of_a_range_of_frames(result, tmp_path):
    with Image.open(export_animation(result, 2, 5, tmp_path / "a.gif")) as gif:
        assert gif.n_frames == 4
    with av.open(str(export_animation(result, 0, 6, tmp_path / "a.mp4"))) as video:
        assert sum(1 for _ in video.decode(video=0)) >= 7
    with pytest.raises(PaintError, match="between 0 and 6"):
        export_animation(result, 4, 9, tmp_path / "b.gif")
    with pytest.raises(PaintError, match=".gif or .mp4"):
        export_animation(result, 0, 2, tmp_path / "b.avi")


def test_a_contact_sheet_holds_the_chosen_frames_in_a_grid(result, tmp_path):
    with Image.open(contact_sheet(result, [0, 2, 4, 6, 1], tmp_path / "s.png", columns=3)) as s:
        width, height = s.size
        assert width == 3 * (320 + 8) + 8
        assert height == 2 * (320 + 22 + 8) + 8
        # the first cell shows the start (blank white paper here), the second step 2's paint
        first = np.asarray(s.convert("RGB"))[20:300, 20:300]
        second = np.asarray(s.convert("RGB"))[20:300, 350:630]
        assert first.min() > 240 and second.std() > 10


def test_the_openraster_layers_rebuild_every_frame(result, tmp_path):
    path = write_ora(result, tmp_path / "p.ora")
    with zipfile.ZipFile(path) as archive:
        first = archive.infolist()[0]
        assert first.filename == "mimetype" and first.compress_type == zipfile.ZIP_STORED
        assert archive.read("mimetype") == b"image/openraster"
        stack = ElementTree.fromstring(archive.read("stack.xml"))
        layers = list(stack.iter("layer"))[::-1]  # bottom first
        assert [layer.get("name") for layer in layers][:2] == ["Start", "Step 1"]
        canvas = np.zeros((96, 96, 4), np.uint8)
        for n, layer in enumerate(layers):
            pixels = np.asarray(
                Image.open(io.BytesIO(archive.read(layer.get("src")))).convert("RGBA")
            )
            composite(canvas, StepLayer(n, int(layer.get("x")), int(layer.get("y")), pixels.copy()))
            if n:
                assert np.array_equal(canvas, result.frame(n))
        merged = np.asarray(Image.open(io.BytesIO(archive.read("mergedimage.png"))))
        assert np.array_equal(merged, result.frame(6))
