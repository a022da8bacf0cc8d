"""Random training patches, drawn lazily from stacks of any size, with flips and 90-degree rotations.

Images are held as (planes, C, Y, X) views (numpy, memmap or dask); a patch reads only its own pixels.
Every image has one Normalizer, computed from its noisy stack and applied to noisy and clean alike,
exactly as ``restore`` will apply it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import InvalidInputError
from ..io.normalize import DEFAULT_PERCENTILES, Normalizer
from .noise import NoiseModel


def non_finite_error(role: str, index: int, where: str) -> InvalidInputError:
    """The error for NaN or inf pixels in a training image (``role``: the argument, e.g. "noisy")."""
    return InvalidInputError(
        f"{role} image {index} contains NaN or inf ({where}); accepted: finite values only; "
        "replace them first (e.g. numpy.nan_to_num)"
    )


def finite_float32(values, role: str, index: int, where: str) -> np.ndarray:
    """``values`` as float32, or :func:`non_finite_error` when any is NaN or inf (also after the cast)."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.asarray(values, dtype=np.float32)
    if not np.isfinite(out).all():
        raise non_finite_error(role, index, where)
    return out


@dataclass
class TrainImage:
    """One training stack: ``noisy`` (planes, C, Y, X), an optional aligned ``clean``, a region."""

    noisy: object | None
    clean: object | None
    normalizer: Normalizer | None
    region: tuple[slice, slice] = (slice(None), slice(None))  # Y, X range this split may use
    index: int = 0  # position in the argument it came from, for error messages
    prefix: str = ""  # "val_images " for explicit validation images, for error messages
    neighbours: np.ndarray | None = None
    "Context training: (planes, 2k + 1) indices of each plane's neighbours (model.context.neighbour_table)."

    @property
    def shape(self) -> tuple[int, int, int, int]:
        src = self.noisy if self.noisy is not None else self.clean
        n, c = src.shape[:2]
        y0, y1, _ = self.region[0].indices(src.shape[2])
        x0, x1, _ = self.region[1].indices(src.shape[3])
        return n, c, y1 - y0, x1 - x0

    def read(self, which: str, plane: int, y: int, x: int, size: int) -> np.ndarray:
        src = self.noisy if which == "noisy" else self.clean
        y0 = self.region[0].indices(src.shape[2])[0]
        x0 = self.region[1].indices(src.shape[3])[0]
        patch = src[plane, :, y0 + y : y0 + y + size, x0 + x : x0 + x + size]
        # lazy inputs (files, dask, zarr) are checked here, where their pixels are read, not all up front
        where = f"plane {plane}, rows {y0 + y}-{y0 + y + size - 1}, columns {x0 + x}-{x0 + x + size - 1}"
        return finite_float32(patch.compute() if hasattr(patch, "compute") else patch, self.prefix + which, self.index, where)

    def read_context(self, which: str, plane: int, y: int, x: int, size: int) -> np.ndarray:
        """Like :meth:`read`, for ``plane`` and its neighbours: (2k + 1, C, size, size) float32, plane-major
        (reflected at the stack's ends); (1, C, size, size) without ``neighbours``."""
        planes = [plane] if self.neighbours is None else self.neighbours[plane]
        return np.stack([self.read(which, int(q), y, x, size) for q in planes])


def augment(arrays: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """The same random flip / 90-degree rotation of C x H x W patches."""
    k = int(rng.integers(4))
    flip = bool(rng.integers(2))
    out = []
    for a in arrays:
        a = np.rot90(a, k, axes=(-2, -1))
        out.append(np.ascontiguousarray(a[..., ::-1] if flip else a))
    return out


class PatchSampler:
    """Draws batches of (input, target) patches.

    ``mode="supervised"``: input = noisy, target = clean (or a second noisy, for Noise2Noise).
    ``mode="synthetic"``: clean images only; noise from ``noise_model`` is drawn per patch, and the
    normaliser is estimated from the noisy image's percentiles on a pixel sample, as restore does.
    ``mode="self-supervised"``: input = target = noisy (blind-spot masking is applied by the trainer).

    Images with ``neighbours`` (context training) give inputs of the sampled plane and its neighbours,
    ((2k + 1) * C, P, P) plane-major, each with its own noise; targets are the sampled plane, (C, P, P).
    """

    def __init__(
        self,
        images: list[TrainImage],
        patch_size: int,
        mode: str,
        rng: np.random.Generator,
        noise_model: NoiseModel | None = None,
        augment_patches: bool = True,
        norm_percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
    ) -> None:
        self.images, self.mode, self.rng = images, mode, rng
        self.noise_model, self.augment = noise_model, augment_patches
        self.norm_percentiles = norm_percentiles
        self.largest = max(min(im.shape[2:]) for im in images)
        self.patch_size = min(patch_size, self.largest)
        self.areas = np.array([im.shape[0] * im.shape[2] * im.shape[3] for im in images], dtype=np.float64)

    def _position(self, im: TrainImage, p: int) -> tuple[int, int, int]:
        n, _, h, w = im.shape
        return int(self.rng.integers(n)), int(self.rng.integers(h - p + 1)), int(self.rng.integers(w - p + 1))

    def _pick_image(self, p: int) -> TrainImage:
        """An image at least ``p`` pixels on each side, drawn with probability proportional to its area."""
        fits = np.array([min(im.shape[2:]) >= p for im in self.images])
        weights = self.areas * fits
        return self.images[int(self.rng.choice(len(self.images), p=weights / weights.sum()))]

    def sample(self, patch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One (input, target) pair of C x P x P float32 patches in the normalised range.

        ``patch_size`` (default: the sampler's) is clipped to the largest side the images allow; a patch
        is drawn only from images it fits in.
        """
        p = min(patch_size or self.patch_size, self.largest)
        im = self._pick_image(p)
        plane, y, x = self._position(im, p)
        centre = 0 if im.neighbours is None else (im.neighbours.shape[1] - 1) // 2
        if self.mode == "synthetic":
            clean = im.read_context("clean", plane, y, x, p)
            params = self.noise_model.sample_params(self.rng)
            noisy = np.stack([self.noise_model.apply(c, params, self.rng) for c in clean])
            norm = self._synthetic_normalizer(im, plane, params)
            pair = [norm.forward(noisy), norm.forward(clean[centre : centre + 1])[0]]
        else:
            noisy = im.read_context("noisy", plane, y, x, p)
            target = noisy[centre] if self.mode == "self-supervised" else im.read("clean", plane, y, x, p)
            pair = [im.normalizer.forward(noisy), im.normalizer.forward(target[None])[0]]
        pair[0] = pair[0].reshape(-1, p, p)  # (2k + 1) x C planes as channels
        return tuple(augment(pair, self.rng)) if self.augment else tuple(pair)

    def _synthetic_normalizer(self, im: TrainImage, plane: int, params: dict) -> Normalizer:
        n, c, h, w = im.shape
        k = 4096
        ys, xs = self.rng.integers(0, h, k), self.rng.integers(0, w, k)
        y0 = im.region[0].indices(im.clean.shape[2])[0]
        x0 = im.region[1].indices(im.clean.shape[3])[0]
        planes = [plane] if im.neighbours is None else im.neighbours[plane]  # context: the running mean's range
        noisy = []
        for q in planes:
            pixels = finite_float32(im.clean[int(q)][:, y0 + ys, x0 + xs], im.prefix + "clean", im.index, f"plane {q}")  # C x k
            noisy.append(self.noise_model.apply(pixels, params, self.rng))
        noisy = np.mean(noisy, axis=0)
        low, high = np.percentile(noisy, self.norm_percentiles, axis=1)
        return Normalizer.from_bounds(low, high)

    def batch(self, size: int, patch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``size`` pairs stacked: two float32 arrays of B x C x P x P."""
        pairs = [self.sample(patch_size) for _ in range(size)]
        return np.stack([a for a, _ in pairs]), np.stack([b for _, b in pairs])


def held_out_images(count: int, fraction: float) -> int:
    """How many whole images (the last ones) :func:`split_validation` holds out; 0: it splits each by rows."""
    return max(1, int(round(fraction * count))) if count >= 3 else 0


def split_row(height: int, fraction: float) -> int:
    """The row where :func:`split_validation` cuts an image: rows above train, rows from it on validate."""
    return int(round(height * (1 - fraction)))


def split_validation(images: list[TrainImage], fraction: float = 0.15) -> tuple[list[TrainImage], list[TrainImage]]:
    """Hold out whole images (the last ones) when there are several, else the bottom rows of the one."""
    n_val = held_out_images(len(images), fraction)
    if n_val:
        return images[:-n_val], images[-n_val:]
    train, val = [], []
    for im in images:
        cut = split_row(im.shape[2], fraction)
        train.append(replace(im, region=(slice(0, cut), slice(None))))
        val.append(replace(im, region=(slice(cut, None), slice(None))))
    return train, val
