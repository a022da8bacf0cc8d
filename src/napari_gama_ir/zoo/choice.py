"""Which shipped model suits the data: ``restore(x)`` without a model asks :func:`choose_model`.

The rule was chosen by measurement (``benchmarks/model_choice.py``, docs/benchmarks.md "Automatic model
choice"): on noisy training and validation photographs and fluorescence images, three features of the noisy
data alone separated the cases where each fast gray model restores best:

- **dark background**: the median of the 8 x 8 block means lies in the lowest quarter of their 1st-99th
  percentile range (fluorescence at 20 and 100 photons: 0.01-0.13; photographs: 0.27-0.71, except
  photographs of dark scenes such as ``brick`` or ``hubble_deep_field``);
- **Poisson-dominated**: at the top of that range the signal-dependent variance ``gain * range`` of
  :func:`~napari_gama_ir.estimate_noise` is more than half of the noise variance (fluorescence at 20 and 100
  photons: 0.67-0.95; dark photographs with Gaussian noise: 0.00-0.30);
- **noise level**: the noise's ``sigma`` as a fraction of that range (fluorescence at 5 photons with read
  noise 2: 0.50-0.75, where the mixed-noise ``general-gray`` restores best by about 1 dB; at 20 photons:
  0.15-0.23, where ``fluorescence`` does).

``photo-gray`` was the best fast model on every held-out gray photograph at sigma 15-50; ``general-gray``
(trained on Gaussian and Poisson-Gaussian noise, photographs and fluorescence) is the robust choice for
noise stronger than the specialised models were trained on and for dark images with Gaussian noise.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInputError

SAMPLE_PLANES = 4  # evenly spaced planes of a stack
SAMPLE_SIDE = 1024  # each cropped to its central SAMPLE_SIDE x SAMPLE_SIDE pixels
BLOCK = 8  # block means for the intensity statistics (noise averaged down 8x)
DARK_MEDIAN = 0.25  # median block mean below this fraction of the 1-99 % range: a dark background
POISSON_SHARE = 0.5  # signal-dependent share of the noise variance at the top of the range
FLUORESCENCE_MAX_NOISE = 0.35  # sigma / range above which general-gray beats fluorescence (read noise)
GENERAL_NOISE = 0.6  # sigma / range above which general-gray is chosen whatever the image


def sample_planes(canonical, planes: int = SAMPLE_PLANES, side: int = SAMPLE_SIDE) -> np.ndarray:
    """The central ``side`` x ``side`` crop of up to ``planes`` evenly spaced planes of a (planes, C, Y, X)
    array, as float64 (n, Y, X) with the channels as further planes."""
    from ..estimate.noise import central_planes

    sample = central_planes(canonical, planes, side)
    return sample.reshape(-1, *sample.shape[-2:])


def data_features(sample, noise=None) -> dict[str, float]:
    """``median`` (of the block means, as a fraction of their 1-99 % range), ``poisson_share`` (at the top
    of that range), ``noise`` (sigma / range), ``gain`` and ``sigma`` (data units), ``range``, of a
    Y x X or (n, Y, X) sample."""
    from ..estimate.noise import estimate_noise

    sample = np.asarray(sample, dtype=np.float64)
    sample = sample.reshape(-1, *sample.shape[-2:])
    if noise is None:
        noise = estimate_noise(sample, axes="ZYX")
    h, w = sample.shape[1] // BLOCK * BLOCK, sample.shape[2] // BLOCK * BLOCK
    if h == 0 or w == 0:
        raise InvalidInputError(f"planes of {sample.shape[1]} x {sample.shape[2]} px are too small to describe")
    means = sample[:, :h, :w].reshape(-1, h // BLOCK, BLOCK, w // BLOCK, BLOCK).mean(axis=(2, 4)).ravel()
    low, high = np.percentile(means, [1, 99])
    span = float(high - low)
    if not span > 0:
        raise InvalidInputError("the data is flat; there is no image to describe")
    gain, var = max(noise.gain, 0.0) * span, noise.sigma**2
    return {
        "median": float((np.median(means) - low) / span),
        "poisson_share": float(gain / (gain + var)) if gain + var > 0 else 0.0,
        "noise": float(noise.sigma / span),
        "gain": float(noise.gain),
        "sigma": float(noise.sigma),
        "range": span,
    }


def choose_model(data_sample, channels: int, rgb_last: bool = False, noise=None) -> tuple[str, str]:
    """The fast shipped model for the data, and why in plain words.

    Parameters
    ----------
    data_sample : array-like
        A few planes of the data, Y x X or (n, Y, X) (e.g. from :func:`sample_planes`); channels count as
        planes. Ignored for RGB data.
    channels : int
        The data's channel count.
    rgb_last : bool
        Whether the channels are the last axis (with 3 channels: RGB).
    noise : NoiseEstimate, optional
        The sample's noise estimate, if already measured.

    Returns
    -------
    (name, reason)
        e.g. ``("photo-gray", "Gaussian-like noise (sigma 0.098 of the range) and photo-like intensities")``.
        A shipped model that is not installed falls back to :func:`~.defaults.default_model_name`.
    """
    from .defaults import default_model_name
    from .store import list_models

    available = {card.name for card in list_models()}
    if channels == 3 and rgb_last:
        name = "photo-rgb" if "photo-rgb" in available else default_model_name(channels, rgb_last)
        return name, "RGB data"
    try:
        f = data_features(data_sample, noise)
    except InvalidInputError as exc:
        name = default_model_name(channels, rgb_last)
        return name, f"the default for single-channel data ({str(exc).split(';')[0]})"
    level = f"sigma {f['noise']:.3g} of the range"
    kind = "Poisson-dominated" if f["poisson_share"] > POISSON_SHARE else "Gaussian-like"
    dark = f["median"] < DARK_MEDIAN
    if f["noise"] > GENERAL_NOISE:
        name, reason = "general-gray", f"very strong noise ({level})"
    elif dark and kind == "Poisson-dominated" and f["noise"] <= FLUORESCENCE_MAX_NOISE:
        name, reason = "fluorescence", f"Poisson-dominated noise ({level}) on a dark background"
    elif dark and kind == "Poisson-dominated":
        name, reason = "general-gray", f"strong read noise ({level}) on a dark background"
    elif dark:
        name, reason = "general-gray", f"Gaussian-like noise ({level}) on a dark background"
    else:
        name, reason = "photo-gray", f"{kind} noise ({level}) and photo-like intensities"
    if name not in available:
        name = default_model_name(channels, rgb_last)
    return name, reason
