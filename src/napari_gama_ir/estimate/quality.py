"""How good is a restoration, without a clean image? Monte-Carlo SURE for signal-dependent noise.

Stein's unbiased risk estimate (Stein 1981) of the mean squared error between a restoration f(y) and the
unknown clean image x, for independent noise of known variance v_i at each pixel:

    E ||f(y) - x||^2 / n = E [ ||f(y) - y||^2 / n - mean(v) + 2 mean(v_i * d f_i / d y_i) ]

The divergence term is estimated with one extra restore of a randomly perturbed input (Ramani, Blu and
Unser, "Monte-Carlo SURE", IEEE TIP 17(9), 2008): with b a random +-1 image and a small step e,
v_i * d f_i / d y_i ~ v_i * b_i * (f_i(y + e b) - f_i(y)) / e. The variances v_i come from the noise model
var(y) = gain * y + sigma^2 (:func:`~napari_gama_ir.estimate.noise.estimate_noise`), evaluated at the noisy
value, which is unbiased for Poisson-Gaussian noise. Assumptions: noise independent from pixel to pixel, no
clipped pixels, and a restoration that is smooth in its input (fp32 is used for both passes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..engine.options import AUTO
from ..engine.plan import plan_restore
from ..engine.restore import restore
from ..errors import InvalidInputError
from .noise import MAX_PLANES, MAX_SIDE, NoiseEstimate, central_crops, central_planes, noise_of_sample

STEP = 0.01  # the perturbation, as a fraction of the noise's typical standard deviation
CLIPPED_WARNING = 0.01  # above this fraction of clipped pixels the estimate is flagged as unreliable
CANONICAL_AXES = "ZCYX"


@dataclass(frozen=True)
class QualityEstimate:
    """Estimated mean squared errors (in squared data units) on the sampled region of the data."""

    mse: float
    "Of the restored image against the unknown clean image."
    noisy_mse: float
    "Of the noisy image against the clean image (the noise's mean variance)."
    noise: NoiseEstimate
    model_name: str
    pixels: int
    "Pixels the estimate averages over."
    data_range: float
    "The data's robust range (the model card's percentiles, e.g. 0.5 to 99.9): the default PSNR range."
    clipped_fraction: float = 0.0
    "Fraction of sampled pixels at a clipped level (the data's minimum or maximum, where many pixels sit)."
    outside_training: str = ""
    "How the data's noise lies outside what the model was trained on (from its card); empty when inside."

    @property
    def reliable(self) -> bool:
        """False when many pixels are clipped: the noise model, and so the estimate, does not hold there."""
        return self.clipped_fraction <= CLIPPED_WARNING

    def psnr(self, data_range: float | None = None) -> float:
        """Estimated PSNR (dB) of the restoration for intensities spanning ``data_range`` (default: the
        data's robust range)."""
        return _psnr(self.mse, data_range or self.data_range)

    def psnr_noisy(self, data_range: float | None = None) -> float:
        """Estimated PSNR (dB) of the noisy data itself."""
        return _psnr(self.noisy_mse, data_range or self.data_range)

    def describe(self, data_range: float | None = None) -> str:
        """One line, e.g. "estimated PSNR 21.3 dB noisy -> 31.0 dB restored (fluorescence; ...)"."""
        data_range = data_range or self.data_range
        if not self.reliable:
            return (f"no reliable estimate: {100 * self.clipped_fraction:.0f} % of the pixels are clipped (at the data's "
                    f"lowest or highest value), where the noise model does not hold ({self.model_name})")  # fmt: skip
        line = (f"estimated PSNR {self.psnr_noisy(data_range):.1f} dB noisy -> {self.psnr(data_range):.1f} dB "
                f"restored ({self.model_name}; {self.noise.describe(data_range)})")  # fmt: skip
        if self.outside_training:
            line += f". {self.outside_training}: fine-tune it on your data (the Fine-tune panel, gama-ir train)"
        return line


def _psnr(mse: float, data_range: float) -> float:
    return float(10 * np.log10(data_range**2 / mse)) if mse > 0 else float("inf")


def estimate_quality(
    noisy,
    model=None,
    *,
    axes: str | None = None,
    noise: NoiseEstimate | None = None,
    region: int = 512,
    planes: int = 4,
    seed: int = 0,
    device: str = AUTO,
    context: int = 0,
    context_axis: str | None = None,
) -> QualityEstimate:
    """Estimate the error of ``restore(noisy, model)`` against the unknown clean image.

    Costs about two restores of the sampled region: ``planes`` evenly spaced planes of a stack, each
    cropped to its central ``region`` x ``region`` pixels, restored with the whole stack's normalisation.

    Parameters
    ----------
    noisy : numpy.ndarray, dask.array.Array, zarr.Array, str or PathLike
        What :func:`~napari_gama_ir.restore` takes.
    model : str, PathLike, GAMAIR or None
        As in ``restore``; None picks a fast shipped model for the data (its noise and background).
    axes : str, optional
        As in ``restore``.
    noise : NoiseEstimate, optional
        The noise model; default :func:`estimate_noise` of ``noisy``.
    region, planes : int
        Size of the sampled crop and number of planes sampled.
    seed : int
        Seed of the random perturbation.
    device : str
        As in ``restore``.
    context, context_axis
        As in ``restore``: a 2-D model restoring each plane from the running mean of its neighbourhood.

    Returns
    -------
    QualityEstimate
        ``mse`` and ``noisy_mse`` in squared data units; ``psnr(data_range)`` in dB.
    """
    for name, value, low in (("region", region, 16), ("planes", planes, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise InvalidInputError(f"{name} must be an int >= {low}, got {value!r}")
    if noise is not None and not isinstance(noise, NoiseEstimate):
        raise InvalidInputError(f"noise must be a NoiseEstimate (from estimate_noise) or None, got {type(noise).__name__}")
    plan = plan_restore(noisy, model, axes=axes, device=device, precision="fp32", context=context, context_axis=context_axis)
    canonical = plan.layout.to_canonical(plan.source.array)  # the input the plan opened, read once more in crops
    noise = noise or noise_of_sample(central_planes(canonical, MAX_PLANES, MAX_SIDE))
    y, run_axes = central_planes(canonical, planes, region), CANONICAL_AXES
    if plan.context:  # a context model needs each plane's neighbours: a run of consecutive planes along its axis
        y, run_axes = _context_run(plan, canonical, max(planes, 2 * plan.context + 1), region), plan.context_axis + "CYX"
    # gain * y + sigma^2 unclipped: its mean is unbiased where the signal is near 0 (clipping y at 0 is not)
    variance = noise.gain * y + noise.sigma**2
    if not variance.mean() > 0:
        raise InvalidInputError("the noise estimate is zero: there is no noise to estimate the error of")
    step = STEP * float(np.sqrt(np.abs(variance).mean()))
    signs = np.random.default_rng(seed).choice(np.array([-1.0, 1.0]), size=y.shape)

    def run(z: np.ndarray) -> np.ndarray:
        return restore(z, plan.model, axes=run_axes, normalizer=plan.normalizer, dtype="float64",
                       precision="fp32", device=device, mean_mode=plan.mean_mode)  # fmt: skip

    restored = run(y)
    nudged = run(y + step * signs)
    divergence = float(np.mean(variance * signs * (nudged - restored)) / step)
    mse = float(np.mean((restored - y) ** 2) - variance.mean() + 2 * divergence)
    data_range = float(np.mean(plan.normalizer.high - plan.normalizer.low))
    return QualityEstimate(mse=max(mse, 0.0), noisy_mse=float(variance.mean()), noise=noise,
                           model_name=plan.model_name, pixels=int(y.size), data_range=data_range,
                           clipped_fraction=_clipped_fraction(y),
                           outside_training=outside_training(noise, plan.model.card, data_range))  # fmt: skip


def _context_run(plan, canonical, planes: int, side: int) -> np.ndarray:
    """The central ``side`` x ``side`` crop of up to ``planes`` consecutive planes along a context model's axis,
    around the stack's central plane, read as float64 (n, C, Y', X')."""
    stack = plan.layout.stack_axes
    sizes = [plan.shape[plan.axes.index(a)] for a in stack]
    pos = stack.index(plan.context_axis)
    size, stride = sizes[pos], int(np.prod(sizes[pos + 1 :], dtype=np.int64))  # planes along the axis, their spacing
    middle = plan.layout.planes // 2
    position = (middle // stride) % size  # the middle plane's index along the axis
    first = int(np.clip(position - planes // 2, 0, max(0, size - planes)))
    return central_crops(canonical, [middle + (first + i - position) * stride for i in range(min(planes, size))], side)


def outside_training(noise: NoiseEstimate, card, data_range: float) -> str:
    """Why ``noise`` lies outside the noise the model's card says it was trained on ("" when it does not).

    Cards give Gaussian noise as sigma of 255 of the normalised range and Poisson noise as photons at the
    99.9th percentile (``training.noise``: kind, sigma_min/max, peak_min/max); a model without that record
    is never flagged.
    """
    trained = (card.training or {}).get("noise") or {}
    kind = trained.get("kind") if isinstance(trained, dict) else None  # a fine-tuned model's: "real (as given)"
    if not kind or data_range <= 0:
        return ""
    sigma = 255 * noise.sigma / data_range
    if kind == "gaussian" and noise.kind == "poisson-gaussian":
        return f"the noise is Poisson-dominated, and {card.name} was trained on Gaussian noise only"
    if "sigma_max" in trained and sigma > 1.2 * float(trained["sigma_max"]):
        return f"the noise (sigma {sigma:.0f} of 255) is above the {trained['sigma_max']} of 255 {card.name} was trained on"
    if kind in ("poisson-gaussian", "mixed") and noise.kind == "poisson-gaussian" and noise.gain > 0:
        photons = data_range / noise.gain
        low, high = float(trained.get("peak_min", 0)), float(trained.get("peak_max", float("inf")))
        if photons < low / 1.2 or photons > 1.2 * high:
            return (f"the data has about {photons:.3g} photons at its brightest, outside the {low:g}-{high:g} "
                    f"{card.name} was trained on")  # fmt: skip
    return ""


def _clipped_fraction(y: np.ndarray) -> float:
    """Fraction of pixels at the lowest or highest value, when that value holds more than 0.1 % of them."""
    clipped = 0
    for bound in (y.min(), y.max()):
        count = int(np.count_nonzero(y == bound))
        if count > 1e-3 * y.size:
            clipped += count
    return clipped / y.size
