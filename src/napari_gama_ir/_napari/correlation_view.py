"""The Fine-tune panel's noise autocorrelation: a small plot and one line, measured in a worker.

``NoiseCorrelationView.measure(data, axes)`` runs :func:`~napari_gama_ir.estimate.correlation.noise_correlation`
in a thread worker (the viewer stays responsive) and then draws the ACF against the lag along y and along x,
with the threshold above which neighbours count as sharing noise, and shows ``describe()`` beneath. White
noise: both curves drop from 1 to about 0 at lag 1. What is drawn can be read back (:meth:`CorrelationPlot.curves`).
"""

from __future__ import annotations

from magicgui.widgets import Container, Label
from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

from ..estimate.correlation import THRESHOLD, NoiseCorrelation, noise_correlation
from .workers import start_worker

COLORS = {"y": QColor(80, 160, 255), "x": QColor(255, 150, 40)}
LOW = -0.2  # the value axis runs from LOW to 1


class CorrelationPlot(QWidget):
    """The noise ACF at lags 0..r along y and along x, and the correlation threshold (dashed)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(130)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.found: NoiseCorrelation | None = None

    def set_correlation(self, found: NoiseCorrelation | None) -> None:
        self.found = found
        self.update()

    def curves(self) -> dict[str, list[float]]:
        """The drawn profiles, {"y": [acf at lag 0, 1, ...], "x": [...]}; empty before a measurement."""
        return {} if self.found is None else {a: [float(v) for v in self.found.profile(a)] for a in COLORS}

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        text = self.palette().windowText().color()
        metrics = painter.fontMetrics()
        line = metrics.height()
        left = metrics.horizontalAdvance("-0.2") + 8
        box = QRectF(left, line + 6, self.width() - left - 90, self.height() - 3 * line - 12)
        painter.setPen(QPen(text, 0.5))
        painter.drawRect(box)
        painter.drawText(QRectF(4, 0, self.width(), line), Qt.AlignmentFlag.AlignLeft, "noise autocorrelation")
        curves = self.curves()
        lags = len(next(iter(curves.values()))) - 1 if curves else 5

        def at(lag: float, value: float) -> QPointF:
            return QPointF(box.left() + box.width() * lag / lags, box.bottom() - box.height() * (value - LOW) / (1 - LOW))

        for value in (0.0, 0.5, 1.0):
            y = at(0, value).y()
            painter.drawText(QRectF(0, y - line / 2, left - 4, line), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, f"{value:g}")
        for lag in range(lags + 1):
            p = at(lag, LOW)
            painter.drawText(QRectF(p.x() - 10, p.y() + 2, 20, line), Qt.AlignmentFlag.AlignHCenter, str(lag))
        painter.drawText(QRectF(box.left(), box.bottom() + line + 2, box.width(), line), Qt.AlignmentFlag.AlignHCenter, "lag (px)")
        painter.setPen(QPen(text, 0.5, Qt.PenStyle.DotLine))
        painter.drawLine(at(0, 0), at(lags, 0))
        threshold = QPen(text, 1, Qt.PenStyle.DashLine)
        painter.setPen(threshold)
        painter.drawLine(at(0, THRESHOLD), at(lags, THRESHOLD))
        y = box.top() + 4 + 2 * (line + 2)
        painter.drawLine(QPointF(box.right() + 8, y + line / 2), QPointF(box.right() + 22, y + line / 2))
        painter.drawText(QRectF(box.right() + 26, y, 70, line), Qt.AlignmentFlag.AlignVCenter, "threshold")
        for row, (axis, values) in enumerate(curves.items()):
            painter.setPen(QPen(COLORS[axis], 2))
            painter.drawPolyline(QPolygonF([at(lag, max(LOW, min(1.0, v))) for lag, v in enumerate(values)]))
            y = box.top() + 4 + row * (line + 2)
            painter.drawLine(QPointF(box.right() + 8, y + line / 2), QPointF(box.right() + 22, y + line / 2))
            painter.setPen(text)
            painter.drawText(QRectF(box.right() + 26, y, 70, line), Qt.AlignmentFlag.AlignVCenter, f"along {axis}")
        if not curves:
            painter.setPen(text)
            painter.drawText(box, Qt.AlignmentFlag.AlignCenter, "measured for the first noisy layer")
        painter.end()


def _measure(data, axes: str | None):
    """A generator for :func:`~.workers.start_worker` that returns the measurement and yields nothing."""
    return noise_correlation(data, axes=axes)
    yield  # noqa: unreachable - makes this a generator


class NoiseCorrelationView(Container):
    """The plot and the one-line reading of the noise autocorrelation of one noisy image."""

    def __init__(self) -> None:
        self.plot = CorrelationPlot()
        self.line = Label(value="")
        self.line.native.setWordWrap(True)
        super().__init__(widgets=[self.line], labels=False)
        self.native.layout().insertWidget(0, self.plot)
        self.margins = (0, 0, 0, 0)
        self._asked = 0  # the latest request: a slower earlier measurement must not overwrite it
        self.worker = None

    def measure(self, data, axes: str | None) -> None:
        """Measure ``data`` (any array ``restore`` takes) in a worker; the plot and line update when done."""
        self._asked += 1
        asked = self._asked
        self.plot.set_correlation(None)
        self.line.value = "measuring the noise autocorrelation..."
        self.worker = start_worker(_measure, {"data": data, "axes": axes}, None, lambda found: self._show(asked, found),
                                   on_error=lambda exc: self._fail(asked, exc), desc="GAMA-IR: noise correlation")  # fmt: skip

    def clear(self) -> None:
        self._asked += 1
        self.plot.set_correlation(None)
        self.line.value = ""

    def _show(self, asked: int, found: NoiseCorrelation) -> None:
        if asked == self._asked:
            self.plot.set_correlation(found)
            self.line.value = found.describe()

    def _fail(self, asked: int, exc: BaseException) -> None:
        if asked == self._asked:
            self.line.value = f"noise autocorrelation not measured: {exc}"
