"""Neighbouring planes as context: a model that restores plane z of a Z-stack (or frame t of a time-lapse)
from planes z-k..z+k.

Layout of a context model's input: plane-major, planes z-k..z+k each with the data's C channels, so
``in_channels = C * (2k + 1)``; the centre plane is channels ``k*C:(k+1)*C`` and ``out_channels = C``
(see :class:`~napari_gama_ir.model.gama_ir.GAMAIR`'s ``context``). At a stack's ends the planes are
reflected (plane -1 is plane 1), as numpy's ``mode="reflect"`` pads, so a stack needs at least k + 1 planes
along the axis. The card records ``context = {"planes": k, "axis": "Z"}``.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InvalidInputError
from .gama_ir import GAMAIR

CONTEXT_AXES = ("Z", "T")
"Axes along which a context model's neighbouring planes may lie."
MAX_CONTEXT = 7
"Most neighbouring planes on each side a context model may see."
CONTEXT_STARTS = ("mean", "centre")
"""How a context model starts from a 2-D one (:func:`add_context`): 'mean' runs the 2-D model on the mean of the
planes (the running mean along the axis, as binning), 'centre' on the centre plane alone (zero weights on the
others). 'mean' is the default: normalised as context models are (the running mean's percentiles), it starts
exactly as binning before the 2-D model, which measured 1.1-2.0 dB above the 2-D model plane by plane on finely sampled
stacks (docs/training.md, 'Context models')."""


def context_of(card) -> tuple[int, str]:
    """``(planes on each side, axis)`` of a model card; ``(0, "")`` for a 2-D model."""
    ctx = getattr(card, "context", None) or {}
    return int(ctx.get("planes", 0)), str(ctx.get("axis", ""))


def plane_channels(card) -> int:
    """Channels of one plane the model restores (its input channels divided by the planes it sees)."""
    k, _ = context_of(card)
    return card.in_channels // (2 * k + 1)


def check_planes(planes: object, what: str = "context") -> int:
    """``planes`` (neighbouring planes on each side) as an int 0..MAX_CONTEXT, else InvalidInputError."""
    if not isinstance(planes, (int, np.integer)) or isinstance(planes, bool) or not 0 <= planes <= MAX_CONTEXT:
        raise InvalidInputError(f"{what} must be an int 0..{MAX_CONTEXT} (neighbouring planes on each side), got {planes!r}")
    return int(planes)


def check_start(start: object, what: str = "context_start") -> str:
    """``start`` as one of :data:`CONTEXT_STARTS`, else InvalidInputError."""
    if start not in CONTEXT_STARTS:
        raise InvalidInputError(f"{what} must be one of {', '.join(map(repr, CONTEXT_STARTS))}, got {start!r}")
    return start


def check_axis(axis: object, what: str = "context_axis") -> str:
    """``axis`` as "Z" or "T" (any case), else InvalidInputError."""
    if not isinstance(axis, str) or axis.upper() not in CONTEXT_AXES:
        raise InvalidInputError(f"{what} must be one of {', '.join(map(repr, CONTEXT_AXES))}, got {axis!r}")
    return axis.upper()


def default_context_axis(axes: str) -> str:
    """The axis context uses when none is named: Z where the data has Z, else T."""
    return "Z" if "Z" in axes else "T"


def with_context(net: GAMAIR, planes: int, axis: str) -> GAMAIR:
    """``net`` as a model that restores each plane from ``planes`` planes on each side along ``axis``: a 2-D model
    becomes its untrained context model (:func:`add_context`, start "mean": the 2-D model on the planes' running
    mean, i.e. binning); a context model is returned as it is when its context is the same, else refused."""
    have, have_axis = context_of(net.card)
    if not have:
        return add_context(net, planes, axis, start="mean")
    if (have, have_axis) != (planes, axis):
        raise InvalidInputError(
            f"model {net.card.name!r} restores each plane from {have} neighbouring plane(s) on each side along "
            f"{have_axis}; context={planes} along {axis} was asked for; accepted: context=0 (the model's own) or "
            f"context={have} with context_axis={have_axis!r}"
        )
    return net


def add_context(net: GAMAIR, planes: int, axis: str, start: str = CONTEXT_STARTS[0]) -> GAMAIR:
    """A new network that sees ``planes`` neighbouring planes on each side along ``axis``, made from a 2-D one.

    Its intro convolution takes ``C * (2 * planes + 1)`` channels. With ``start="mean"`` every plane gets the
    2-D model's weights divided by ``2 * planes + 1`` and the residual mix (``GAMAIR.plane_mix``) is the
    planes' mean, so until it is trained its output equals the 2-D model's output on the mean of the planes
    (to float rounding: the first convolution is linear). With ``start="centre"`` the centre plane gets the
    2-D model's weights and the others zeros, so its output equals the 2-D model's exactly.
    Every other tensor is copied; ``net`` is left as it is.

    Parameters
    ----------
    net : GAMAIR
        A 2-D model with ``net.card`` (from :func:`build_model` or :func:`load_model`), ``in_channels ==
        out_channels``.
    planes : int
        Neighbouring planes on each side, 1..MAX_CONTEXT (``zoo.card.MAX_CONTEXT``).
    axis : {"Z", "T"}
        Axis of the stacks the model is for.
    start : {"mean", "centre"}
        What the new model computes before training (:data:`CONTEXT_STARTS`).

    Returns
    -------
    GAMAIR
        In eval mode, with ``card.context == {"planes": planes, "axis": axis}`` and its ``model_args``
        (``in_channels``, ``context``) updated.
    """
    planes, axis, start = check_planes(planes), check_axis(axis), check_start(start, "start")
    if planes == 0:
        raise InvalidInputError("context must be at least 1 neighbouring plane on each side to add context, got 0")
    card = getattr(net, "card", None)
    if card is None or not isinstance(net, GAMAIR):
        raise InvalidInputError(f"add_context needs a GAMAIR from build_model() or load_model(), got {type(net).__name__}")
    if context_of(card)[0] or net.in_channels != net.out_channels:
        raise InvalidInputError(
            f"model {card.name!r} takes {net.in_channels} channels for {net.out_channels} out "
            f"(context {context_of(card)[0]}); add_context needs a 2-D model with as many channels in as out"
        )
    c = net.out_channels
    args = {**card.model_args, "in_channels": c * (2 * planes + 1), "out_channels": c, "context": planes}
    out = GAMAIR(**args)
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    intro = state["intro.weight"]  # width x C x 3 x 3
    wide = torch.zeros(intro.shape[0], c * (2 * planes + 1), *intro.shape[2:], dtype=intro.dtype)
    n = 2 * planes + 1
    if start == "mean":
        wide[:] = (intro / n).repeat(1, n, 1, 1)
        state["plane_mix"] = torch.full((n,), 1.0 / n, dtype=intro.dtype)
    else:
        wide[:, planes * c : (planes + 1) * c] = intro
        state["plane_mix"] = out.plane_mix.detach().clone()  # one-hot: the centre plane alone
    state["intro.weight"] = wide
    out.load_state_dict(state)
    for src, dst in zip(net.modules(), out.modules()):  # GAMA's mean mode and box size as the 2-D model runs
        if hasattr(src, "mean_mode"):
            dst.mean_mode, dst.local_size = src.mean_mode, src.local_size
    out.to(next(net.parameters()).device).eval()
    out.card = card.replace(model_args=args, context={"planes": planes, "axis": axis})
    return out


def reflect(index: np.ndarray, size: int) -> np.ndarray:
    """Indices reflected into ``0..size-1`` without repeating the edge (-1 -> 1, size -> size - 2).

    Valid for indices in ``-(size-1)..2*(size-1)``; callers check ``size >= planes + 1``.
    """
    index = np.abs(np.asarray(index))
    last = size - 1
    return np.where(index > last, 2 * last - index, index) if last else np.zeros_like(index)


def context_indices(stack_shape: tuple[int, ...], axis_pos: int, planes: int) -> np.ndarray:
    """For each plane of a stack flattened in C order, the flat indices of planes -k..+k along one axis.

    Parameters
    ----------
    stack_shape : tuple of int
        Sizes of the stack axes (e.g. (T, Z)); the planes are numbered as ``np.ravel_multi_index`` does.
    axis_pos : int
        Position of the context axis in ``stack_shape``.
    planes : int
        Neighbouring planes on each side (k).

    Returns
    -------
    numpy.ndarray
        (prod(stack_shape), 2k + 1) int64; column k is the plane itself; reflected at the axis's ends.
    """
    total = int(np.prod(stack_shape, dtype=np.int64)) if stack_shape else 1
    coords = list(np.unravel_index(np.arange(total), stack_shape)) if stack_shape else []
    size = stack_shape[axis_pos]
    columns = []
    for offset in range(-planes, planes + 1):
        moved = list(coords)
        moved[axis_pos] = reflect(coords[axis_pos] + offset, size)
        columns.append(np.ravel_multi_index(moved, stack_shape))
    return np.stack(columns, axis=1).astype(np.int64)


def gather_context(stack: np.ndarray, index: int, planes: int, axis: int = 0) -> np.ndarray:
    """Planes ``index - planes .. index + planes`` of ``stack`` along ``axis`` (reflected at the ends),
    stacked on a new axis 0: shape (2k + 1, *the other axes). A copy; ``stack`` is not changed."""
    size = stack.shape[axis]
    if not 0 <= index < size:
        raise InvalidInputError(f"plane {index} is outside the stack's {size} planes along axis {axis}")
    if size < planes + 1:
        raise InvalidInputError(f"{planes} neighbouring planes on each side need at least {planes + 1} planes, the stack has {size}")
    idx = reflect(np.arange(index - planes, index + planes + 1), size)
    return np.stack([np.take(stack, int(i), axis=axis) for i in idx])


def gather_planes(x, gather: np.ndarray, separate: bool = False):
    """Network input from (m, C, Y, X) planes (numpy or a tensor) and a (n, 2k + 1) table of plane indices.

    Returns (n, (2k + 1) * C, Y, X), plane-major, or with ``separate`` (a 1-channel model on C-channel
    data) (n * C, 2k + 1, Y, X): each channel with its own neighbours.
    """
    n, width = gather.shape
    m, c, h, w = x.shape
    if isinstance(x, torch.Tensor):
        g = x[torch.as_tensor(gather.reshape(-1), device=x.device)].reshape(n, width, c, h, w)
    else:
        g = x[gather.reshape(-1)].reshape(n, width, c, h, w)
    if separate:
        return g.transpose(1, 2).reshape(n * c, width, h, w) if isinstance(g, torch.Tensor) else \
            np.ascontiguousarray(g.transpose(0, 2, 1, 3, 4)).reshape(n * c, width, h, w)  # fmt: skip
    return g.reshape(n, width * c, h, w)


def stack_context(axes: str, shape: tuple[int, ...], planes: int, axis: str, what: str) -> int:
    """Check that data of ``axes`` and ``shape`` has ``axis`` with at least ``planes + 1`` planes along it,
    and return the axis's position among the stack axes (the axes other than C, Y and X).

    ``what`` starts the error message (who needs the context, e.g. "model 'x' restores each plane from ...").

    Raises
    ------
    InvalidInputError
        A 2-D image, data without ``axis`` (never restored or trained plane by plane instead), or a stack
        with fewer than ``planes + 1`` planes along it.
    """
    stack_axes = "".join(a for a in axes if a not in "CYX")
    data = f"the data (axes {axes!r}, shape {tuple(shape)})"
    if axis not in stack_axes:
        if not stack_axes:
            raise InvalidInputError(
                f"{what}, but {data} is a single 2-D image; accepted: a stack with a {axis} axis (e.g. {axis}YX), "
                "or no context (a 2-D model) for 2-D images"
            )
        other = stack_axes[0]
        raise InvalidInputError(
            f"{what}, but {data} has no {axis} axis; accepted: data with a {axis} axis (pass axes= if its {other} "
            f"axis is really {axis}), or context along {other}, or none"
        )
    size = shape[axes.index(axis)]
    if size < planes + 1:
        raise InvalidInputError(
            f"{what}, but {data} has {size} plane(s) along {axis}; accepted: at least {planes + 1} "
            "(the stack's ends are reflected), or no context"
        )
    return stack_axes.index(axis)


def neighbour_table(axes: str, shape: tuple[int, ...], planes: int, axis: str, what: str) -> np.ndarray:
    """:func:`context_indices` for data of ``axes`` and ``shape`` (its planes numbered as
    :class:`~napari_gama_ir.io.axes.CanonicalLayout` numbers them), after :func:`stack_context`'s checks."""
    pos = stack_context(axes, shape, planes, axis, what)
    sizes = tuple(shape[axes.index(a)] for a in axes if a not in "CYX")
    return context_indices(sizes, pos, planes)


def check_data(card, axes: str, shape: tuple[int, ...]) -> tuple[int, str]:
    """Check that the model of ``card`` can restore data of ``axes`` and ``shape`` (see :func:`stack_context`);
    return ``(planes, axis)``, ``(0, "")`` for a 2-D model."""
    planes, axis = context_of(card)
    if planes:
        what = f"model {card.name!r} restores each plane from {planes} neighbouring plane(s) on each side along {axis}"
        stack_context(axes, shape, planes, axis, what)
    return planes, axis
