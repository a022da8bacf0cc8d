"""How noisy is the data? A fit of the signal-dependent noise model var(y) = gain * E[y] + sigma^2.

The method is the wavelet-domain level-set fit of Foi et al., "Practical Poissonian-Gaussian noise modeling
and fitting for single-image raw-data" (IEEE TIP 17(10), 2008), without its clipping correction: each plane
is cut into 2 x 2 blocks; the block mean estimates the local signal and the finest diagonal Haar detail
(x00 - x01 - x10 + x11) / 2, which cancels any locally linear signal, has the noise's variance. Blocks are
grouped into level sets by the mean of their neighbours, the variance of each set is estimated robustly (median absolute
deviation, so that edges and texture do not count as noise), and a weighted least-squares line through
(level, variance) gives ``gain`` and ``sigma ** 2``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InvalidInputError
from ..io.axes import CanonicalLayout, default_axes, normalize_axes
from ..io.files import open_input
from ..io.normalize import spread_planes

MAX_PLANES = 8  # planes sampled from a stack (evenly spaced)
MAX_SIDE = 1024  # each sampled plane is cropped to its central MAX_SIDE x MAX_SIDE pixels
LEVEL_SETS = 16  # equal-count groups of blocks by their mean
MIN_BLOCKS_PER_SET = 64
MAD_TO_SIGMA = 1.482602218505602  # 1 / Phi^-1(3/4): the MAD of a normal variable times this is its sigma


@dataclass(frozen=True)
class NoiseEstimate:
    """Noise model var(y) = ``gain`` * E[y] + ``sigma`` ** 2, in the data's own units.

    For Gaussian noise (photographs) ``gain`` is near 0 and ``sigma`` is the noise's standard deviation; for
    Poisson-Gaussian noise (fluorescence) ``gain`` is the data units per photon (1 / photons per unit) and
    ``sigma`` the read noise.
    """

    gain: float
    sigma: float
    levels: np.ndarray = field(repr=False)
    "Mean signal of each level set used in the fit."
    variances: np.ndarray = field(repr=False)
    "Robust noise variance measured in each level set."

    def variance(self, signal) -> np.ndarray:
        """Noise variance at ``signal`` (an array of expected values), never below ``sigma ** 2``."""
        return self.gain * np.maximum(np.asarray(signal, dtype=np.float64), 0.0) + self.sigma**2

    @property
    def kind(self) -> str:
        """"poisson-gaussian" when the signal-dependent part dominates at the data's median level, else
        "gaussian"."""
        level = float(np.median(self.levels)) if len(self.levels) else 0.0
        return "poisson-gaussian" if self.gain * max(level, 0.0) > self.sigma**2 else "gaussian"

    def describe(self, data_range: float | None = None) -> str:
        """One line, e.g. "Poisson-Gaussian noise: 23 photons per unit, read noise 0.004"."""
        if self.kind == "gaussian":
            scale = f" ({100 * self.sigma / data_range:.1f} % of the range)" if data_range else ""
            return f"Gaussian noise: sigma {self.sigma:.4g}{scale}"
        return f"Poisson-Gaussian noise: {1 / self.gain:.3g} photons per unit, read noise {self.sigma:.3g}"


def estimate_noise(data, axes: str | None = None) -> NoiseEstimate:
    """Estimate the noise of an image or stack from the noisy data alone.

    Parameters
    ----------
    data : numpy.ndarray, dask.array.Array, zarr.Array, str or PathLike
        One plane or a stack (any axes ``restore`` takes); integer or float. Up to 8 planes are sampled,
        each cropped to its central 1024 x 1024 pixels; channels are pooled (one estimate for all).
    axes : str, optional
        As in :func:`~napari_gama_ir.restore`; default from the file or the shape.

    Returns
    -------
    NoiseEstimate
        ``gain`` and ``sigma`` in the data's units.

    Raises
    ------
    InvalidInputError
        Data with fewer than 2 x 2 pixels, NaN or inf, or too few distinct values to fit.
    """
    src = open_input(data)
    shape = tuple(int(s) for s in src.array.shape)
    if len(shape) < 2 or min(shape[-2:]) < 2:
        raise InvalidInputError(f"data of shape {shape} is too small to estimate noise; need at least 2 x 2 pixels")
    layout = CanonicalLayout(normalize_axes(axes or src.axes or default_axes(shape), shape), shape)
    return noise_of_sample(central_planes(layout.to_canonical(src.array), MAX_PLANES, MAX_SIDE))


def central_planes(canonical, planes: int, side: int) -> np.ndarray:
    """The central ``side`` x ``side`` crop of up to ``planes`` evenly spaced planes of a (planes, C, Y, X)
    numpy, dask or zarr-backed array, read as float64 (n, C, Y', X'): only the crops are read."""
    n = canonical.shape[0]
    return central_crops(canonical, spread_planes(n, planes), side)


def central_crops(canonical, picks, side: int) -> np.ndarray:
    """The central ``side`` x ``side`` crop of the planes ``picks`` of a (planes, C, Y, X) numpy, dask or
    zarr-backed array, read as float64 (len(picks), C, Y', X'): only the crops are read."""
    _, _, h, w = canonical.shape
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    crops = []
    for p in picks:
        crop = canonical[int(p)][:, top : top + side, left : left + side]
        crops.append(np.asarray(crop.compute() if hasattr(crop, "compute") else crop, dtype=np.float64))
    return np.stack(crops)


def noise_of_sample(sample: np.ndarray) -> NoiseEstimate:
    """:func:`estimate_noise` of planes already read, (n, C, Y, X) float (e.g. from :func:`central_planes`)."""
    if not np.isfinite(sample).all():
        raise InvalidInputError("data contains NaN or inf; replace them first (e.g. numpy.nan_to_num)")
    keys, levels, details = [], [], []
    for channel in sample.reshape(-1, *sample.shape[-2:]):
        for found, kept in zip((keys, levels, details), _haar_blocks(channel)):
            found.append(kept)
    return _fit(*(np.concatenate(found) for found in (keys, levels, details)))


def _haar_blocks(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grouping key, mean and diagonal detail of each 2 x 2 block, for blocks that touch neither the image's
    lowest nor its highest value (clipped pixels have no noise to measure)."""
    h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    a, b = image[0:h:2, 0:w:2], image[0:h:2, 1:w:2]
    c, d = image[1:h:2, 0:w:2], image[1:h:2, 1:w:2]
    level = (a + b + c + d) / 4
    # blocks are grouped by their 8 neighbours' mean, whose noise is independent of the block's own: so the
    # mean level of a group is unbiased (grouping by a block's own noisy mean would flatten the fitted line)
    key = (9 * _box3(level) - level) / 8
    detail = (a - b - c + d) / 2
    lo, hi = image.min(), image.max()
    keep = np.ones(level.shape, bool)
    for bound in (lo, hi):
        if np.count_nonzero(image == bound) > 1e-3 * image.size:  # a clipped level, not a single extreme pixel
            keep &= ~((a == bound) | (b == bound) | (c == bound) | (d == bound))
    return key[keep], level[keep], detail[keep]


def _box3(image: np.ndarray) -> np.ndarray:
    """3 x 3 moving average (edges replicated)."""
    padded = np.pad(image, 1, mode="edge")
    h, w = image.shape
    return sum(padded[i : i + h, j : j + w] for i in range(3) for j in range(3)) / 9


def _fit(key: np.ndarray, level: np.ndarray, detail: np.ndarray) -> NoiseEstimate:
    if level.size < MIN_BLOCKS_PER_SET * 2:
        raise InvalidInputError("too few unclipped pixels to estimate the noise; give a larger image or stack")
    order = np.argsort(key, kind="stable")
    sets = np.array_split(order, max(1, min(LEVEL_SETS, level.size // MIN_BLOCKS_PER_SET)))  # small images: fewer
    means = np.array([level[s].mean() for s in sets])
    variances = np.array([(MAD_TO_SIGMA * np.median(np.abs(detail[s] - np.median(detail[s])))) ** 2 for s in sets])
    weights = np.array([s.size for s in sets], dtype=np.float64) / np.maximum(variances, 1e-300) ** 2  # var of a var ~ var^2
    gain, offset = _weighted_line(means, variances, weights)
    if gain < 0:  # signal-independent noise: the weighted mean variance
        gain, offset = 0.0, float(np.average(variances, weights=weights))
    if offset < 0:  # pure Poisson: a line through the origin
        gain, offset = float(np.sum(weights * means * variances) / np.sum(weights * means**2)), 0.0
    return NoiseEstimate(gain=float(gain), sigma=float(np.sqrt(offset)), levels=means, variances=variances)


def _weighted_line(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    if np.ptp(x) == 0:
        return 0.0, float(np.average(y, weights=w))
    design = np.stack([x, np.ones_like(x)], axis=1) * np.sqrt(w)[:, None]
    (slope, intercept), *_ = np.linalg.lstsq(design, y * np.sqrt(w), rcond=None)
    return float(slope), float(intercept)
