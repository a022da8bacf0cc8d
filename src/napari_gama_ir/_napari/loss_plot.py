"""A live plot of training progress with axes and ticks, drawn with QPainter (no plotting library needed).

Two series against the optimiser step: the training curve (blue, one point per step) and the validation
metric (orange dots, one per validation). The validation metric is a PSNR in dB on the left axis; the
training curve shares that axis when it is a PSNR too (the 'psnr' loss), else it gets its own axis on the
right. ``add(...)`` only stores two numbers and asks Qt for a repaint, which Qt merges, so a progress event
per training step costs next to nothing and the viewer stays responsive. What is drawn can be read back
(:meth:`LossPlot.legend`, :meth:`LossPlot.axis_labels`, :meth:`LossPlot.ticks`).
"""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

TRAIN_COLOR = QColor(80, 160, 255)
VAL_COLOR = QColor(255, 150, 40)
TICKS = 4  # about this many ticks per axis
LEGEND_ROW = 16  # px per legend line


def nice_ticks(low: float, high: float, count: int = TICKS) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten apart) covering ``low`` .. ``high``."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0, 1.0]
    if high - low < 1e-12 * max(1.0, abs(high)):
        low, high = low - 0.5 * max(1e-6, abs(low) * 0.01), high + 0.5 * max(1e-6, abs(high) * 0.01)
    raw = (high - low) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * (1 - 1e-9))
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return [i * step for i in range(first, last + 1)]


def tick_text(value: float, spacing: float) -> str:
    """A tick label with as many decimals as the spacing needs (and k for thousands of steps)."""
    if abs(value) >= 10_000 and spacing >= 1000:
        return f"{value / 1000:g}k"
    decimals = max(0, -math.floor(math.log10(spacing) + 1e-9)) if spacing > 0 else 0
    decimals += spacing * 10**decimals % 1 > 1e-6  # 2.5, 0.25 ...
    return f"{value:.{decimals}f}" if decimals <= 4 else f"{value:.2g}"


class LossPlot(QWidget):
    """Training curve and validation metric against the step, with labelled axes and ticks."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(220)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.set_labels()
        self.clear()

    def set_labels(self, train: str = "training PSNR", val: str = "validation PSNR", train_in_db: bool = True,
                   train_unit: str = "") -> None:  # fmt: skip
        """Name the two series; ``train_in_db``: the training curve is a PSNR too and shares the dB axis, else it
        gets the right axis, titled ``train_unit``."""
        self.train_label, self.val_label, self.train_in_db, self.train_unit = train, val, train_in_db, train_unit
        self.update()

    def clear(self) -> None:
        """Forget both curves (a new run starts)."""
        self.train: list[tuple[int, float]] = []  # (step, training PSNR in dB, or loss)
        self.val: list[tuple[int, float]] = []  # (step, validation PSNR in dB); step 0 = before training
        self.total = 1
        self.update()

    def add(self, step: int, total: int, train: float | None = None, val: float | None = None) -> None:
        """Append a training value and/or a validation value at ``step`` of ``total``."""
        self.total = max(1, total, step)
        if train is not None and math.isfinite(train):
            self.train.append((step, train))
        if val is not None and math.isfinite(val):
            self.val.append((step, val))
        self.update()

    # --- what is drawn, readable without pixels -------------------------------------------------
    def legend(self) -> list[str]:
        """The legend's lines: each series' name and its latest value."""
        train_unit = " dB" if self.train_in_db else ""
        fmt = "{:.2f}" if self.train_in_db else "{:.4g}"
        train = f"{self.train_label}: {fmt.format(self.train[-1][1])}{train_unit}" if self.train else f"{self.train_label}: -"
        val = f"{self.val_label}: {self.val[-1][1]:.2f} dB" if self.val else f"{self.val_label}: -"
        return [train, val]

    def axis_labels(self) -> dict[str, str]:
        """Titles of the x, left and right axes ("" where there is no axis)."""
        return {"x": "step", "left": "dB", "right": "" if self.train_in_db else self.train_unit}

    def ticks(self, axis: str) -> list[str]:
        """Tick labels of ``axis`` ("x", "left" or "right"), bottom to top / left to right."""
        values = self._ticks(axis)
        spacing = values[1] - values[0] if len(values) > 1 else 1.0
        return [tick_text(v, spacing) for v in values]

    def _ticks(self, axis: str) -> list[float]:
        if axis == "x":
            return nice_ticks(0, self.total)
        if axis == "right" and self.train_in_db:
            return []
        points = self._axis_points(axis)
        if not points:
            return []
        values = [v for _, v in points]
        return nice_ticks(min(values), max(values))

    def _axis_points(self, axis: str) -> list[tuple[int, float]]:
        if axis == "left":
            return self.val + self.train if self.train_in_db else self.val
        return [] if self.train_in_db else self.train

    # --- painting ---------------------------------------------------------------------------------
    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        text_color = self.palette().windowText().color()
        metrics = painter.fontMetrics()
        legend = self.legend()
        for row, (text, color) in enumerate(zip(legend, (TRAIN_COLOR, VAL_COLOR))):
            y = 2 + row * LEGEND_ROW
            painter.setPen(QPen(color, 2))
            painter.drawLine(QPointF(6, y + LEGEND_ROW / 2), QPointF(20, y + LEGEND_ROW / 2))
            painter.setPen(text_color)
            painter.drawText(QRectF(26, y, self.width() - 30, LEGEND_ROW), Qt.AlignmentFlag.AlignVCenter, text)
        left_ticks, right_ticks = self.ticks("left"), self.ticks("right")
        left_w = max([metrics.horizontalAdvance(t) for t in [*left_ticks, "dB"]]) + 8
        right_w = max([metrics.horizontalAdvance(t) for t in right_ticks] or [0]) + (8 if right_ticks else 0)
        line = metrics.height()
        top = 4 + len(legend) * LEGEND_ROW + 1.5 * line  # the axis titles above the box, clear of the top ticks
        box = QRectF(left_w, top, self.width() - left_w - right_w - 6, self.height() - top - 2 * line - 8)
        painter.setPen(QPen(text_color, 0.5))
        painter.drawRect(box)
        titles = self.axis_labels()
        title_y = top - 1.5 * line
        painter.drawText(QRectF(0, title_y, left_w + 20, line), Qt.AlignmentFlag.AlignLeft, titles["left"])
        if titles["right"]:
            painter.drawText(QRectF(box.right() - 60, title_y, 60 + right_w, line), Qt.AlignmentFlag.AlignRight, titles["right"])
        self._x_axis(painter, box, metrics, text_color)
        left = self._y_axis(painter, box, metrics, text_color, "left")
        right = self._y_axis(painter, box, metrics, text_color, "right")
        self._curve(painter, box, self.train, TRAIN_COLOR, left if self.train_in_db else right, dots=False)
        self._curve(painter, box, self.val, VAL_COLOR, left, dots=True)
        if not self.train and not self.val:
            painter.setPen(text_color)
            painter.drawText(box, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                             "training and validation appear here while training")  # fmt: skip
        painter.end()

    def _x_axis(self, painter: QPainter, box: QRectF, metrics, color: QColor) -> None:
        values, texts = self._ticks("x"), self.ticks("x")
        span = values[-1] or 1.0
        painter.setPen(QPen(color, 0.5))
        for value, text in zip(values, texts):
            x = box.left() + box.width() * value / span
            painter.drawLine(QPointF(x, box.bottom()), QPointF(x, box.bottom() + 3))
            width = metrics.horizontalAdvance(text)
            painter.drawText(QPointF(min(max(x - width / 2, 0), self.width() - width), box.bottom() + 4 + metrics.ascent()), text)
        self._x_span = span
        title = QRectF(box.left(), box.bottom() + 4 + metrics.height(), box.width(), metrics.height())
        painter.drawText(title, Qt.AlignmentFlag.AlignHCenter, self.axis_labels()["x"])

    def _y_axis(self, painter: QPainter, box: QRectF, metrics, color: QColor, side: str):
        """Ticks and labels of one value axis; returns its (low, high) range, or None without one."""
        values, texts = self._ticks(side), self.ticks(side)
        if not values:
            return None
        low, high = values[0], values[-1]
        painter.setPen(QPen(color, 0.5))
        for value, text in zip(values, texts):
            y = box.bottom() - box.height() * (value - low) / (high - low)
            if side == "left":
                painter.drawLine(QPointF(box.left() - 3, y), QPointF(box.left(), y))
                rect = QRectF(0, y - metrics.height() / 2, box.left() - 5, metrics.height())
                painter.drawText(rect, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, text)
            else:
                painter.drawLine(QPointF(box.right(), y), QPointF(box.right() + 3, y))
                rect = QRectF(box.right() + 5, y - metrics.height() / 2, self.width() - box.right() - 5, metrics.height())
                painter.drawText(rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, text)
        return low, high

    def _curve(self, painter: QPainter, box: QRectF, points, color: QColor, value_range, dots: bool) -> None:
        """One series on its axis' range."""
        if not points or value_range is None:
            return
        low, high = value_range
        poly = QPolygonF([
            QPointF(box.left() + box.width() * s / self._x_span, box.bottom() - box.height() * (v - low) / (high - low))
            for s, v in points
        ])  # fmt: skip
        painter.setPen(QPen(color, 1.5 if dots else 1.0))
        if len(points) > 1:
            painter.drawPolyline(poly)
        if dots or len(points) == 1:
            painter.setBrush(color)
            for point in poly:
                painter.drawEllipse(point, 2.5, 2.5)
            painter.setBrush(Qt.BrushStyle.NoBrush)
