"""What the console draws for a part: a camera's megapixels are reduced to a screen's size before
the heat-map is blended in, aspect kept; the defect box, in fractions of the frame, is unchanged.
A rectangle dragged on the frame becomes the `--roi` of the camera's frame."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from PyQt6.QtCore import QPoint, Qt

from inspect_app.decision import Verdict
from inspect_app.pipeline import InspectedPart
from sensors.sample import Sample
from ui.view_state import FrameGeometry, region_in_camera
from ui.widgets.part_view import PartImage
from ui.worker import DISPLAY_MAX_SIDE, part_view


def _part(frame: np.ndarray) -> InspectedPart:
    verdict = Verdict(verdict="FAIL", defect_class="dent", defect_score=0.9, box=(0.5, 0.5, 1, 1))
    heat = np.zeros((16, 16), np.float32)
    heat[8:, 8:] = 1.0  # the defect in the bottom-right quarter
    return InspectedPart(sample=Sample(part_id="P1", frame=frame), verdict=verdict, heatmap=heat)


def test_a_five_megapixel_frame_is_drawn_at_screen_size_with_its_heat_map_in_place() -> None:
    frame = np.full((2048, 2448, 3), 100, np.uint8)
    view = part_view(_part(frame), "press", "v1", 0.5, None)
    assert view.image is not None
    h, w = view.image.shape[:2]
    assert w == DISPLAY_MAX_SIDE and abs(h - round(2048 * DISPLAY_MAX_SIDE / 2448)) <= 1
    assert view.box == (0.5, 0.5, 1, 1)
    tinted = np.abs(view.image.astype(int) - 100).sum(axis=2) > 30
    assert tinted[int(h * 0.8), int(w * 0.8)] and not tinted[int(h * 0.2), int(w * 0.2)]


def test_a_frame_that_fits_a_screen_is_drawn_as_it_is() -> None:
    frame = np.full((480, 640, 3), 100, np.uint8)
    view = part_view(_part(frame), "press", "v1", 0.5, None)
    assert view.image is not None and view.image.shape == (480, 640, 3)


def test_a_region_drawn_on_screen_is_a_roi_in_the_camera_frame() -> None:
    camera = FrameGeometry(2448, 2048)
    # corners in any order, outward to whole pixels
    assert region_in_camera((0.75, 0.5, 0.25, 0.25), camera) == (612, 512, 1224, 512)
    assert region_in_camera((0.1001, 0.1001, 0.2, 0.2), camera) == (245, 205, 245, 205)
    # clipped to the frame: a drag that left it stops at its edge
    assert region_in_camera((-0.2, 0.9, 0.5, 1.4), camera) == (0, 1843, 1224, 205)
    # a frame already cropped to the line's region: the answer is in the camera's pixels
    cropped = FrameGeometry(256, 256, x0=400, y0=300)
    assert region_in_camera((0.25, 0.25, 0.75, 0.5), cropped) == (464, 364, 128, 64)
    # a click, or a sliver, is not a region
    assert region_in_camera((0.5, 0.5, 0.5, 0.5), camera) is None
    assert region_in_camera((0.0, 0.0, 1.0, 0.003), camera) is None
    assert region_in_camera((0.0, 0.0, 1.0, 1.0), camera) == (0, 0, 2448, 2048)


def test_the_part_view_records_where_its_frame_lies_in_the_camera_frame() -> None:
    frame = np.full((256, 320, 3), 100, np.uint8)
    assert part_view(_part(frame), "press", "v1", 0.5, None).geometry == FrameGeometry(320, 256)
    view = part_view(_part(frame), "press", "v1", 0.5, None, roi=[400, 300, 320, 256])
    assert view.geometry == FrameGeometry(320, 256, 400, 300)
    no_frame = InspectedPart(sample=Sample(part_id="P2"), verdict=Verdict(verdict="PASS"))
    assert part_view(no_frame, "press", "v1", 0.5, None).geometry is None


def test_dragging_in_picking_mode_reports_the_rectangle(qtbot: Any) -> None:
    widget = PartImage()
    qtbot.addWidget(widget)
    widget.resize(400, 300)
    widget.show()
    widget.show_image(np.zeros((480, 640, 3), np.uint8), None)
    picked: list[tuple[float, float, float, float]] = []
    widget.region_picked.connect(picked.append)
    qtbot.mousePress(widget, Qt.MouseButton.LeftButton, pos=QPoint(100, 75))
    qtbot.mouseRelease(widget, Qt.MouseButton.LeftButton, pos=QPoint(300, 225))
    assert picked == []  # not picking: a drag does nothing
    widget.set_picking(True)
    qtbot.mousePress(widget, Qt.MouseButton.LeftButton, pos=QPoint(100, 75))
    qtbot.mouseMove(widget, pos=QPoint(200, 150))
    qtbot.mouseRelease(widget, Qt.MouseButton.LeftButton, pos=QPoint(300, 225))
    assert len(picked) == 1
    assert picked[0] == pytest.approx((0.25, 0.25, 0.75, 0.75), abs=0.01)
    assert widget.region == picked[0]
    widget.set_picking(False)
    assert widget.region is None
