"""Is the noise pixel-independent? Its spatial autocorrelation, estimated from the noisy data alone.

Camera read-out (stripes along rows or columns) and processing (filtering, resampling) make neighbouring
pixels share noise. A self-supervised network then learns the noise from the pixels it sees next to the one
it is scored on instead of removing it; the objectives in :mod:`napari_gama_ir.training.objectives` keep the
pixels along the correlated axis apart (structN2V masks, Broaddus et al., ISBI 2020, for the blind spot).

The estimate, on central crops of up to 8 planes: each plane minus a smoothing of it (``SMOOTHING``, a
Savitzky-Golay filter that keeps quadratic signal) leaves the noise and the signal's finest detail; dividing
by the local noise standard deviation of the fitted noise model (:mod:`.noise`) makes bright and dark
regions count alike, clipping at ``CLIP`` standard deviations tames edges, and only the flattest
``FLAT_FRACTION`` of pixels is measured, where the residual holds noise alone. The ACF along x comes from
the plane minus its smoothing along y only, and along y from the smoothing along x only (so white noise
reads exactly 0 there, and noise correlated along one axis keeps its own ACF); the other lags come from the plane smoothed along both, less the dip
that white noise shows after that smoothing. Noise counts as correlated along an axis when the ACF at lag 1
exceeds ``THRESHOLD`` there and exceeds the other axis' by ``ANISOTROPY``; ``length`` is how many lags in a
row stay above ``THRESHOLD``. The thresholds were set on the 14 BBBC007 images of real nuclei with synthetic
noise (``python -m benchmarks.structured_noise --detection``): white Gaussian and Poisson-Gaussian noise (5
to 100 photons) read -0.02 to +0.02 at lag 1; noise filtered along an axis by a 3- or 5-pixel box 0.66-0.67
and 0.79-0.81 (exactly 2/3 and 4/5); column or row stripes of sigma 0.05 on Poisson-Gaussian noise at 20
photons 0.15-0.22, all called correlated along the right axis; stripes of sigma 0.02 (0.02-0.05) are not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InvalidInputError
from ..io.axes import CanonicalLayout, default_axes, normalize_axes
from ..io.files import open_input
from .noise import MAX_PLANES, central_planes, noise_of_sample

RADIUS = 5  # the ACF is measured for lags up to this many pixels along each axis: (2 r + 1) x (2 r + 1)
SIDE = 512  # each sampled plane is cropped to its central SIDE x SIDE pixels
SMOOTHING = np.array([-2, 3, 6, 7, 6, 3, -2]) / 21
"The signal estimate subtracted: a 7 x 7 Savitzky-Golay smoothing (quadratic along y and x, applied along each)."
CLIP = 4.0  # residuals beyond this many noise standard deviations (edges, hot pixels) are clipped
THRESHOLD = 0.1  # an ACF above this at lag 1 (and along the lags counted in ``length``) is correlated
ANISOTROPY = 0.05  # ... along one direction only when it exceeds the other direction's lag-1 ACF by this
FLAT_FRACTION = 0.25  # the flattest quarter of each plane is measured (see _flat)
FLAT_SIGMA = 4.0  # px: the Gaussian blur whose slope picks the flat pixels
DIRECTIONS = ("y", "x")


@dataclass(frozen=True)
class NoiseCorrelation:
    """The noise's spatial autocorrelation and what it means for self-supervised training.

    ``acf`` is (2 r + 1) x (2 r + 1) float64 with 1 at the centre: ``acf[r + dy, r + dx]`` is the correlation
    of the noise at pixels (y, x) and (y + dy, x + dx).
    """

    acf: np.ndarray = field(repr=False)
    direction: str | None
    "'y' or 'x': neighbours along that axis share noise (row stripes read 'x', column stripes 'y'). None when\n    the noise is pixel-independent, or correlated along both axes alike."
    length: int
    "Lags (px) along ``direction`` (the larger of the two when None) whose ACF exceeds THRESHOLD; 0 for white noise."
    correlated: bool

    @property
    def radius(self) -> int:
        return self.acf.shape[0] // 2

    def profile(self, axis: str) -> np.ndarray:
        """The ACF at lags 0..r along ``axis`` ('y' or 'x'), float64 (r + 1,)."""
        r = self.radius
        return self.acf[r:, r].copy() if axis == "y" else self.acf[r, r:].copy()

    def describe(self) -> str:
        """One plain line for the CLI and the panel."""
        if not self.correlated:
            return "noise is pixel-independent"
        if self.direction is None:
            return (f"noise is correlated along y and x over {self.length} pixels (resampled or processed data?): "
                    "self-supervised training cannot hide it; train on the raw data if you have it")  # fmt: skip
        cause = "read-out stripes?" if self.length >= self.radius else "filtered or resampled along it?"
        return (f"noise is correlated along {self.direction} over {self.length} pixels ({cause}): "
                f"self-supervised training masks along {self.direction}")  # fmt: skip


def noise_correlation(data, axes: str | None = None, radius: int = RADIUS) -> NoiseCorrelation:
    """Estimate the noise autocorrelation of an image or stack from the noisy data alone.

    Parameters
    ----------
    data : numpy.ndarray, dask.array.Array, zarr.Array, str or PathLike
        One plane or a stack (any axes ``restore`` takes), integer or float. Up to 8 evenly spaced planes are
        sampled, each cropped to its central 512 x 512 pixels; channels are pooled.
    axes : str, optional
        As in :func:`~napari_gama_ir.restore`; default from the file or the shape.
    radius : int
        Largest lag measured (px), >= 1.

    Returns
    -------
    NoiseCorrelation

    Raises
    ------
    InvalidInputError
        Planes smaller than (2 radius + 1) * 2 pixels a side, NaN or inf, or too few distinct values.
    """
    if not isinstance(radius, (int, np.integer)) or isinstance(radius, bool) or radius < 1:
        raise InvalidInputError(f"radius must be an int >= 1, got {radius!r}")
    src = open_input(data)
    shape = tuple(int(s) for s in src.array.shape)
    layout = CanonicalLayout(normalize_axes(axes or src.axes or default_axes(shape), shape), shape)
    return correlation_of_sample(central_planes(layout.to_canonical(src.array), MAX_PLANES, SIDE), radius)


def correlation_of_sample(sample: np.ndarray, radius: int = RADIUS) -> NoiseCorrelation:
    """:func:`noise_correlation` of planes already read, (n, C, Y, X) float (e.g. from
    :func:`~napari_gama_ir.estimate.noise.central_planes`)."""
    h, w = sample.shape[-2:]
    if min(h, w) < 2 * (2 * radius + 1):
        raise InvalidInputError(
            f"planes of {h} x {w} pixels are too small to measure the noise correlation up to {radius} px; "
            f"accepted: at least {2 * (2 * radius + 1)} x {2 * (2 * radius + 1)}"
        )
    noise = noise_of_sample(sample)  # also refuses NaN, inf and flat data
    r = radius
    both, x_smoothed, y_smoothed = (np.zeros((2 * r + 1, 2 * r + 1)) for _ in range(3))
    for plane in sample.reshape(-1, h, w):
        smooth = _smooth(plane, SMOOTHING)
        std = np.sqrt(np.maximum(noise.variance(smooth), 1e-300))
        keep = _flat(_smooth(plane, _gaussian_kernel(FLAT_SIGMA)) / std).astype(np.float64)
        pairs = np.maximum(_lag_sums(keep, r), 1)
        both += _lag_sums(_standard(plane - smooth, std, keep), r) / pairs  # mean product per lag
        x_smoothed += _lag_sums(_standard(plane - _smooth(plane, SMOOTHING, (1,)), std, keep), r) / pairs
        y_smoothed += _lag_sums(_standard(plane - _smooth(plane, SMOOTHING, (0,)), std, keep), r) / pairs
    acf = both / both[r, r] - _white_residual_acf(r)
    # along each axis, from the residual smoothed across it only: white noise reads exactly 0 there, and noise
    # correlated along one axis keeps its own ACF (subtracting a 2-D smoothing would dip it across that axis)
    acf[:, r] = x_smoothed[:, r] / x_smoothed[r, r]
    acf[r, :] = y_smoothed[r, :] / y_smoothed[r, r]
    return _classify(acf)


def _standard(residual: np.ndarray, std: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The residual in noise standard deviations, clipped at CLIP, centred, and 0 outside ``keep``."""
    z = np.clip(residual / std, -CLIP, CLIP)
    return (z - z[keep > 0].mean()) * keep


def _classify(acf: np.ndarray) -> NoiseCorrelation:
    r = acf.shape[0] // 2
    along = {"y": acf[r + 1 :, r], "x": acf[r, r + 1 :]}
    lag1 = {k: float(v[0]) for k, v in along.items()}
    lengths = {k: _run_length(v) for k, v in along.items()}
    strong = [k for k in DIRECTIONS if lag1[k] > THRESHOLD]
    if not strong:
        return NoiseCorrelation(acf, None, 0, False)
    if len(strong) == 1 or abs(lag1["y"] - lag1["x"]) > ANISOTROPY:
        d = max(DIRECTIONS, key=lambda k: lag1[k])
        return NoiseCorrelation(acf, d, lengths[d], True)
    return NoiseCorrelation(acf, None, max(lengths.values()), True)


def _flat(signal: np.ndarray) -> np.ndarray:
    """The FLAT_FRACTION of pixels where the smoothed signal (in noise standard deviations) changes least:
    there the residual holds noise only, elsewhere the signal's own detail would read as correlation."""
    gy, gx = np.gradient(signal)
    slope = np.hypot(gy, gx)
    return slope <= np.quantile(slope, FLAT_FRACTION)


def _run_length(values: np.ndarray) -> int:
    """How many lags from 1 on, in a row, have an ACF above THRESHOLD."""
    above = values > THRESHOLD
    return int(np.argmin(above)) if not above.all() else len(values)


def _lag_sums(z: np.ndarray, r: int) -> np.ndarray:
    """Sum over p of z(p) z(p + d) for every lag |dy|, |dx| <= r (pixels outside the array count as 0), as a
    (2 r + 1) x (2 r + 1) array; by FFT with zero padding (no wrap-around)."""
    shape = (max(z.shape[0] + r, 2 * r + 1), max(z.shape[1] + r, 2 * r + 1))
    f = np.fft.rfft2(z, s=shape)
    full = np.fft.irfft2(f * np.conj(f), s=shape)
    return np.roll(full, (r, r), axis=(0, 1))[: 2 * r + 1, : 2 * r + 1]


def _gaussian_kernel(sigma: float) -> np.ndarray:
    half = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    return k / k.sum()


def _smooth(image: np.ndarray, k: np.ndarray, axes: tuple[int, ...] = (0, 1)) -> np.ndarray:
    """``image`` filtered by the odd-length 1-D kernel ``k`` along each of ``axes`` (0: y, 1: x), edges reflected."""
    half = len(k) // 2
    out = image
    for axis in axes:
        pad = [(0, 0), (0, 0)]
        pad[axis] = (half, half)
        padded = np.pad(out, pad, mode="reflect")
        n = out.shape[axis]
        out = sum(k[i] * np.take(padded, np.arange(i, i + n), axis=axis) for i in range(len(k)))
    return out


def _white_residual_acf(r: int) -> np.ndarray:
    """The ACF that white noise has after subtracting the smoothing (0 at the centre): a dip of a few
    hundredths around the centre, subtracted so that white noise reads about 0 at every lag."""
    half = len(SMOOTHING) // 2
    h = -np.outer(SMOOTHING, SMOOTHING)
    h[half, half] += 1.0  # impulse response of (identity - smoothing)
    acf = _lag_sums(h, r)
    acf = acf / acf[r, r]
    acf[r, r] = 0.0
    return acf
