"""A live plot of training loss and validation PSNR, drawn with QPainter (no plotting library needed).

``add(progress)`` only stores two numbers and asks Qt for a repaint, which Qt merges, so a progress
event per training step costs next to nothing and the viewer stays responsive.
"""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

LOSS_COLOR = QColor(80, 160, 255)
PSNR_COLOR = QColor(255, 150, 40)


class LossPlot(QWidget):
    """Training loss per step (blue, left) and validation PSNR per validation (orange, right) against step."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(150)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.clear()

    def clear(self) -> None:
        """Forget both curves (a new run starts)."""
        self.loss: list[tuple[int, float]] = []  # (step, training loss)
        self.psnr: list[tuple[int, float]] = []  # (step, validation PSNR in dB); step 0 = before training
        self.total = 1
        self.update()

    def add(self, progress) -> None:
        """Append one :class:`~napari_gama_ir.training.finetune.FinetuneProgress`."""
        self.total = max(1, progress.total, progress.step)
        if math.isfinite(progress.loss):
            self.loss.append((progress.step, progress.loss))
        if progress.val_psnr is not None and math.isfinite(progress.val_psnr):
            self.psnr.append((progress.step, progress.val_psnr))
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        text_color = self.palette().windowText().color()
        box = QRectF(4, 20, self.width() - 8, self.height() - 26)
        painter.setPen(QPen(text_color, 0.5))
        painter.drawRect(box)
        legend = [("loss", self.loss, LOSS_COLOR, "{:.4g}", Qt.AlignmentFlag.AlignLeft),
                  ("val PSNR", self.psnr, PSNR_COLOR, "{:.2f} dB", Qt.AlignmentFlag.AlignRight)]  # fmt: skip
        for label, points, color, fmt, align in legend:
            text = f"{label} {fmt.format(points[-1][1])}" if points else f"{label} -"
            painter.setPen(color)
            painter.drawText(QRectF(4, 0, self.width() - 8, 18), align | Qt.AlignmentFlag.AlignVCenter, text)
            self._curve(painter, box, points, color, dots=label != "loss")
        if not self.loss and not self.psnr:
            painter.setPen(text_color)
            painter.drawText(box, Qt.AlignmentFlag.AlignCenter, "loss and validation PSNR appear here while training")
        painter.end()

    def _curve(self, painter: QPainter, box: QRectF, points, color: QColor, dots: bool) -> None:
        """One series scaled to its own range (the legend shows the latest value)."""
        if not points:
            return
        values = [v for _, v in points]
        low, high = min(values), max(values)
        span = (high - low) or 1.0
        poly = QPolygonF([
            QPointF(box.left() + box.width() * s / self.total, box.bottom() - 4 - (box.height() - 8) * (v - low) / span)
            for s, v in points
        ])  # fmt: skip
        painter.setPen(QPen(color, 1.5))
        painter.drawPolyline(poly)
        if dots:
            painter.setBrush(color)
            for point in poly:
                painter.drawEllipse(point, 2.5, 2.5)
