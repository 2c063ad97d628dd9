"""The current part's image with the heat-map overlay and the defect box, scaled to fit.

In picking mode (`set_picking(True)`) a rectangle dragged on the image is reported as
`region_picked` (two corners in fractions of the frame): the console turns it into the
`adapt --roi` of the part's region (`ui.view_state.region_in_camera`).
"""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QPointF, QRectF, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen
from PyQt6.QtWidgets import QSizePolicy, QWidget


def to_qimage(rgb: np.ndarray) -> QImage:
    """An RGB uint8 (H, W, 3) array as a QImage that owns its pixels."""
    image = np.ascontiguousarray(rgb, dtype=np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    h, w = image.shape[:2]
    return QImage(image.tobytes(), w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class PartImage(QWidget):
    """Draws the frame (heat-map already blended in by the worker) and a thick defect box."""

    BOX_COLOUR = QColor("#ff1744")
    REGION_COLOUR = QColor("#ffd600")

    # (x0, y0, x1, y1) in 0..1 of the frame: the corners where a drag began and ended
    region_picked = pyqtSignal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(260, 260)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.image: QImage | None = None
        self.box: tuple[float, float, float, float] | None = None
        self.caption = "no image"
        self.picking = False
        self.region: tuple[float, float, float, float] | None = None  # drawn while picking
        self._drag_from: tuple[float, float] | None = None

    def set_picking(self, on: bool) -> None:
        """Turn region picking on (a cross cursor; drags draw a region) or off."""
        self.picking = on
        self._drag_from = None
        if not on:
            self.region = None
        cursor = Qt.CursorShape.CrossCursor if on else Qt.CursorShape.ArrowCursor
        self.setCursor(cursor)
        self.update()

    def to_fraction(self, point: QPointF) -> tuple[float, float] | None:
        """A widget position as a fraction of the frame (clipped to it); None without one."""
        target = self.image_rect()
        if target.isEmpty():
            return None
        fx = (point.x() - target.x()) / target.width()
        fy = (point.y() - target.y()) / target.height()
        return min(max(fx, 0.0), 1.0), min(max(fy, 0.0), 1.0)

    def mousePressEvent(self, event: QMouseEvent | None) -> None:
        if not self.picking or event is None or event.button() != Qt.MouseButton.LeftButton:
            super().mousePressEvent(event)
            return
        self._drag_from = self.to_fraction(event.position())

    def mouseMoveEvent(self, event: QMouseEvent | None) -> None:
        if self._drag_from is None or event is None:
            super().mouseMoveEvent(event)
            return
        here = self.to_fraction(event.position())
        if here is not None:
            self.region = (*self._drag_from, *here)
            self.update()

    def mouseReleaseEvent(self, event: QMouseEvent | None) -> None:
        start, self._drag_from = self._drag_from, None
        if start is None or event is None:
            super().mouseReleaseEvent(event)
            return
        end = self.to_fraction(event.position())
        if end is not None:
            self.region = (*start, *end)
            self.update()
            self.region_picked.emit(self.region)

    def show_image(
        self,
        rgb: np.ndarray | None,
        box: tuple[float, float, float, float] | None,
        caption: str = "",
    ) -> None:
        self.image = None if rgb is None else to_qimage(rgb)
        self.box = box
        self.caption = caption or ("no image (vibration only)" if rgb is None else "")
        self.update()

    def image_rect(self) -> QRectF:
        """Where the image is drawn: as large as fits, aspect kept, centred."""
        if self.image is None:
            return QRectF()
        scale = min(self.width() / self.image.width(), self.height() / self.image.height())
        w, h = self.image.width() * scale, self.image.height() * scale
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def paintEvent(self, event: QPaintEvent | None) -> None:
        del event
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#202124"))
        if self.image is None:
            painter.setPen(QColor("#e8eaed"))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.caption)
            return
        target = self.image_rect()
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawImage(target, self.image)
        if self.box is not None:
            pen = QPen(self.BOX_COLOUR)
            pen.setWidth(max(3, int(target.width() / 90)))
            painter.setPen(pen)
            painter.drawRect(on_frame(target, self.box))
        if self.picking and self.region is not None:
            pen = QPen(self.REGION_COLOUR)
            pen.setWidth(2)
            pen.setStyle(Qt.PenStyle.DashLine)
            painter.setPen(pen)
            painter.drawRect(on_frame(target, self.region))
        painter.end()


def on_frame(target: QRectF, corners: tuple[float, float, float, float]) -> QRectF:
    """Two corners given as fractions of the frame (in any order), where the frame is drawn."""
    x0, y0, x1, y1 = corners
    return QRectF(
        target.x() + min(x0, x1) * target.width(),
        target.y() + min(y0, y1) * target.height(),
        abs(x1 - x0) * target.width(),
        abs(y1 - y0) * target.height(),
    )
