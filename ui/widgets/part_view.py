"""The current part's image with the heat-map overlay and the defect box, scaled to fit."""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QRectF, Qt
from PyQt6.QtGui import QColor, QImage, QPainter, QPaintEvent, QPen
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

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(260, 260)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.image: QImage | None = None
        self.box: tuple[float, float, float, float] | None = None
        self.caption = "no image"

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
            x0, y0, x1, y1 = self.box
            pen = QPen(self.BOX_COLOUR)
            pen.setWidth(max(3, int(target.width() / 90)))
            painter.setPen(pen)
            painter.drawRect(
                QRectF(
                    target.x() + x0 * target.width(),
                    target.y() + y0 * target.height(),
                    (x1 - x0) * target.width(),
                    (y1 - y0) * target.height(),
                )
            )
        painter.end()
