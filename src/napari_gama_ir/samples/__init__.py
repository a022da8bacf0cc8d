"""Shipped sample images: real images with synthetic noise, plus their clean references (no Qt).

The files sit beside this module and are made by ``scripts/release/make_samples.py``; ``samples.json`` records
each sample's source, licence, noise model and seed.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import tifffile

from ..errors import InvalidInputError


@lru_cache(maxsize=1)
def _index() -> dict:
    text = resources.files(__name__).joinpath("samples.json").read_text(encoding="utf-8")
    return json.loads(text)


def list_samples() -> list[str]:
    """Names of the shipped samples.

    Examples
    --------
    >>> list_samples()
    ['fluorescence-2d', 'fluorescence-3d', 'photo-rgb']
    """
    return list(_index())


def sample_info(name: str) -> dict:
    """The ``samples.json`` record of one sample: files, axes, scale, description, source, licence, noise."""
    index = _index()
    if name not in index:
        raise InvalidInputError(f"unknown sample {name!r}; accepted: {', '.join(index)}")
    return index[name]


def load_sample(name: str) -> dict:
    """Read one sample.

    Parameters
    ----------
    name : str
        One of :func:`list_samples`.

    Returns
    -------
    dict
        ``noisy`` (numpy array), ``clean`` (numpy array, or None where there is no reference),
        ``axes`` (str), ``scale`` (tuple of float per axis, without C), ``description`` (str).

    Raises
    ------
    InvalidInputError
        Unknown name.

    Examples
    --------
    >>> s = load_sample("fluorescence-3d")
    >>> s["axes"], s["noisy"].ndim
    ('ZYX', 3)
    """
    info = sample_info(name)
    folder = resources.files(__name__)

    def read(kind: str):
        fname = info["files"].get(kind)
        if fname is None:
            return None
        with resources.as_file(folder.joinpath(fname)) as path:
            return tifffile.imread(path)

    return {
        "noisy": read("noisy"),
        "clean": read("clean"),
        "axes": info["axes"],
        "scale": tuple(float(s) for s in info["scale"]),
        "description": info["description"],
    }


__all__ = ["list_samples", "load_sample", "sample_info"]
