"""The restore engine: ``iter_restore`` (a generator of progress) and ``restore`` (the same, driven).

Data flows as (planes, C, Y, X) chunks of a dask array: read (one chunk ahead, in a reading thread),
normalise with the stack's statistics, cut each image into overlapping tiles, run tiles through the
network in batches, blend, invert the normalisation, cast, and hand the planes to a sink.
On a GPU all of that after the read runs on the device (``engine.resident``), and a chunk's result is
copied back while the device computes the next one.
"""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Generator, Iterator

import numpy as np
import torch

from ..errors import InvalidInputError, OutputError, RestoreCancelled
from ..io.files import sigterm_raises_systemexit
from ..io.normalize import Normalizer, cast_to
from ..io.sinks import ArraySink, PngSink, TiffSink, ZarrSink
from ..tiling.merge import ArrayMerger
from ..tiling.windows import aligned_tiling, blend_window, tile_grid
from ..model.context import gather_planes
from . import resident
from .ensemble import iter_self_ensemble
from .options import AUTO, AUTO_OVERLAP, RestoreOptions
from .plan import RestorePlan, _active_client, plan_restore
from .runtime import (FORWARD_LOCK, ModelSpec, autocast, bf16_copy, cached_model, cpu_threads, is_out_of_memory, pick_device,
                      pick_precision, private_copy, runs_in_bf16_weights)


@dataclass(frozen=True)
class Progress:
    """One step of a running job: ``done`` of ``total`` units (tiles), and what is happening.

    The first step of :func:`iter_restore` carries the plan it runs (``plan``; its ``describe()`` is the
    message), so a caller that let it plan sees what "auto" chose; later steps carry None.
    """

    done: int
    total: int
    message: str = ""
    plan: RestorePlan | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class TileSettings:
    """What the tile loop needs; plain values, so it travels to dask workers."""

    tile: tuple[int, int]
    overlap: tuple[int, int]
    batch_size: int
    device: str
    precision: str
    window: str = "cosine"  # blend window kind, see tiling.windows.ramp_1d
    align: int = 1  # tiles start on multiples of this (the network's 2 ** levels), see aligned_tiling
    backoff: dict = field(default_factory=dict, compare=False, repr=False)
    "Batch, tile and overlap reduced after out-of-memory; later chunks start from them, not from the plan."
    chunk_path: str = "auto"  # "device" (engine.resident, also on the CPU: tests), "host", or "auto"
    self_ensemble: bool = False  # each tile as the mean over its 8 flips and rotations (engine.ensemble)

    @property
    def resident(self) -> bool:
        """True when a chunk is processed where the network runs (a GPU), not in host numpy."""
        if self.chunk_path != "auto":
            return self.chunk_path == "device"
        return self.device.split(":")[0] in ("cuda", "mps")


def _predict(net, batch, settings: TileSettings) -> Generator[int, None, object]:
    """Network output (float32) for a batch of tiles: numpy in, numpy out; a device tensor stays there.

    A generator: with the self-ensemble it yields 0 after each of the 8 views, so that a cancel between
    them acts within one forward pass. One forward pass at a time runs per process (``FORWARD_LOCK``), on
    the CPU with threads for the cores other processes leave free (``cpu_threads``).
    """
    device = torch.device(settings.device)
    x = batch if isinstance(batch, torch.Tensor) else torch.from_numpy(batch).to(device, non_blocking=True)
    precision = settings.precision
    if runs_in_bf16_weights(device, precision):  # bf16 weights and activations, no autocast; residual in float32
        net, precision = bf16_copy(net), "fp32"

    def run(forward):
        with FORWARD_LOCK, cpu_threads(device), torch.inference_mode(), autocast(device, precision):
            return forward()

    if settings.self_ensemble:
        y = yield from _inference_steps(iter_self_ensemble(net, x, run))
    else:
        y = run(lambda: net(x).float())
    return y if isinstance(batch, torch.Tensor) else y.cpu().numpy()


def _inference_steps(views) -> Generator[int, None, torch.Tensor]:
    """Drive ``views`` in inference mode (it cannot be held across a yield), yielding 0 between steps."""
    while True:
        try:
            with torch.inference_mode():
                next(views)
        except StopIteration as done:
            return done.value
        yield 0


def iter_tiles(net, images, settings: TileSettings) -> Generator[int, None, np.ndarray]:
    """Restore (N, C, Y, X) float32 images tile by tile; yields tiles done per batch, returns (N, C', Y, X).

    ``images`` is a numpy array (the host path) or a tensor on the network's device (the accelerator
    path: tiles are cut, run and blended there, and the result is a tensor on that device).
    The images are padded like the network pads them and tiles start on its ``settings.align`` grid
    (:func:`aligned_tiling`), so a network with a finite receptive field gives the untiled result.
    On out-of-memory the batch is halved, then the tile, and the work is retried.
    """
    on_device = isinstance(images, torch.Tensor)
    n, _, h, w = images.shape
    tile = settings.backoff.get("tile", settings.tile)
    overlap = settings.backoff.get("overlap", settings.overlap)
    batch = settings.backoff.get("batch_size", settings.batch_size)
    reported = 0  # tiles already reported: a retry after out-of-memory does not count them twice
    while True:
        try:
            padded, tile, overlap = aligned_tiling((h, w), tile, overlap, settings.align)
            source = _pad_like_network(images, padded)
            if on_device:
                merger = resident.TensorMerger((n, net.out_channels, *padded), images.device)
                stack = torch.stack
            else:
                merger = ArrayMerger((n, net.out_channels, *padded))
                stack = np.stack
            corners = tile_grid(padded, tile, overlap)
            for corner in corners:
                merger.set_window(corner, blend_window(tile, overlap, corner, padded, kind=settings.window))
            jobs = [(i, y, x) for i in range(n) for (y, x) in corners]
            for start in range(0, len(jobs), batch):
                chunk = jobs[start : start + batch]
                tiles = stack([source[i, :, y : y + tile[0], x : x + tile[1]] for i, y, x in chunk])
                pred = yield from _predict(net, tiles, settings)
                for values, location in zip(pred, chunk):
                    merger.add(values, location)
                if start + len(chunk) > reported:
                    yield start + len(chunk) - reported
                    reported = start + len(chunk)
            return merger.finalize()[..., :h, :w]
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            merger = source = tiles = pred = None  # free them before the retry
            if settings.device.startswith("cuda"):
                torch.cuda.empty_cache()
            if batch > 1:
                batch //= 2
            elif min(tile) > 64:
                tile = (max(64, tile[0] // 2), max(64, tile[1] // 2))
                # tiles that covered the image had no overlap; smaller ones need one to blend
                overlap = tuple(min(max(o, AUTO_OVERLAP), t // 4) for o, t in zip(overlap, tile))
            else:
                raise InvalidInputError(
                    f"out of memory on {settings.device} even with batch 1 and {tile} tiles; use device='cpu'"
                ) from exc
            settings.backoff.update(tile=tile, overlap=overlap, batch_size=batch)


def _pad_like_network(images, padded: tuple[int, int]):
    """Pad (N, C, Y, X) numpy images or a tensor at the bottom and right to ``padded`` as GAMAIR pads its
    input (reflect, or edge when the image is too small to reflect)."""
    h, w = images.shape[-2:]
    ph, pw = padded[0] - h, padded[1] - w
    if not (ph or pw):
        return images
    reflect = ph < h and pw < w
    if isinstance(images, torch.Tensor):
        return torch.nn.functional.pad(images, (0, pw, 0, ph), mode="reflect" if reflect else "replicate")
    return np.pad(images, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="reflect" if reflect else "edge")


def iter_block(net, raw: np.ndarray, normalizer: Normalizer, settings: TileSettings, out_dtype: str, separate: bool,
               gather: np.ndarray | None = None):  # fmt: skip
    """Restore raw (k, C, Y, X) planes; yields tiles done per batch, returns (k, C, Y, X) of ``out_dtype``.

    For a context model ``gather`` is an (n, 2k + 1) table of indices into ``raw``'s planes: output plane
    i is restored from planes ``gather[i]`` (:func:`~napari_gama_ir.model.context.gather_planes`), and the
    result has n planes.
    """
    if settings.resident:
        pending = yield from iter_block_resident(net, raw, normalizer, settings, out_dtype, separate, gather)
        return pending.result()
    _check_finite(raw)
    x = normalizer.forward(raw)
    _, c, h, w = x.shape
    k = len(x) if gather is None else len(gather)
    y = yield from iter_tiles(net, _network_input(x, separate, gather), settings)
    if not np.isfinite(y).all():  # NaN would cast to 0 (integers) or stay NaN, written without a word
        raise resident.non_finite_output(net)
    return cast_to(normalizer.inverse(y.reshape(k, -1, h, w), dtype=out_dtype), out_dtype)


def _network_input(x, separate: bool, gather: np.ndarray | None):
    """Normalised (m, C, Y, X) planes as the network takes them: one channel at a time with ``separate``,
    and each plane with its neighbours for a context model (``gather``)."""
    if gather is not None:
        return gather_planes(x, gather, separate)
    m, c, h, w = x.shape
    return x.reshape(m * c, 1, h, w) if separate else x


def iter_block_resident(net, raw: np.ndarray, normalizer: Normalizer, settings: TileSettings, out_dtype: str, separate: bool,
                        gather: np.ndarray | None = None):  # fmt: skip
    """:func:`iter_block` with every step after the upload on the network's device; returns a
    :class:`~napari_gama_ir.engine.resident.PendingBlock` whose copy to the host is under way."""
    device = torch.device(settings.device)
    if resident.float64_on_host(raw.dtype, normalizer, device):  # exact arithmetic the device lacks (MPS)
        _check_finite(raw)
        x, finite = resident.upload(normalizer.forward(raw), device), None
    else:
        x = resident.upload(raw, device)
        finite = torch.isfinite(x).all() if raw.dtype.kind == "f" else None  # checked when the result is read
        x = resident.normalize(x, normalizer)
    _, c, h, w = x.shape
    k = len(x) if gather is None else len(gather)
    y = yield from iter_tiles(net, _network_input(x, separate, gather), settings)
    y = y.reshape(k, -1, h, w)
    output_finite = torch.isfinite(y).all()  # one reduction on the device, read with the result
    if resident.float64_on_host(out_dtype, normalizer, device):
        values, host_normalizer = y, normalizer  # PendingBlock.result inverts and casts on the host
    else:
        values, host_normalizer = resident.cast(resident.denormalize(y, normalizer, out_dtype), out_dtype), None
    return resident.PendingBlock(
        values, out_dtype, finite, output_finite, resident.non_finite_output(net), normalizer=host_normalizer
    )


def restore_block(raw: np.ndarray, net, normalizer: Normalizer, settings: TileSettings, out_dtype: str, separate: bool,
                  gather: np.ndarray | None = None):  # fmt: skip
    """:func:`iter_block` run to its end (for dask tasks)."""
    gen = iter_block(net, raw, normalizer, settings, out_dtype, separate, gather)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def _check_finite(block: np.ndarray) -> None:
    if block.dtype.kind == "f" and not np.isfinite(block).all():
        raise InvalidInputError("data contains NaN or inf; replace them first (e.g. numpy.nan_to_num) and try again")


def _block_on_worker(block, spec: ModelSpec, normalizer, settings, out_dtype, separate, mean_mode, local_size, width=1):
    """dask task: the model is rebuilt once per worker process from its bytes and cached there.

    ``settings.device == "auto"`` is resolved here, on the worker, whose GPU may differ from the client's.
    For a context model the block holds each plane's ``width`` (2k + 1) neighbours, as (n, width * C, Y, X)
    (:func:`_with_neighbours`).
    """
    _match_worker_threads()
    if settings.device == "auto":
        device = pick_device("auto")
        settings = dataclasses.replace(settings, device=str(device), precision=pick_precision(settings.precision, device))
    net = cached_model(spec, torch.device(settings.device), mean_mode, local_size)
    block, gather = np.asarray(block), None
    if width > 1:
        n, _, h, w = block.shape
        block = block.reshape(n * width, -1, h, w)
        gather = np.arange(n * width).reshape(n, width)
    return restore_block(block, net, normalizer, settings, out_dtype, separate, gather)


def _match_worker_threads() -> None:
    """On a dask.distributed worker, let torch use the worker's threads, not every core of the host:
    two CPU workers on one machine would otherwise each start a thread per core."""
    try:
        from distributed import get_worker

        nthreads = int(get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):  # not on a worker (a local dask scheduler)
        return
    if torch.get_num_threads() != nthreads:
        torch.set_num_threads(nthreads)


def _network(plan: RestorePlan):
    """The plan's network in eval mode, on the plan's device, with the plan's GAMA mean mode; for a caller's
    model, a private copy (:func:`~napari_gama_ir.engine.runtime.private_copy`)."""
    if not plan.owns_model:
        return private_copy(plan.model, plan.mean_mode, plan.local_size, torch.device(plan.device))
    plan.model.set_mean_mode(plan.mean_mode, plan.local_size)
    return plan.model.eval().to(torch.device(plan.device))


def _settings(plan: RestorePlan) -> TileSettings:
    return TileSettings(plan.tile, plan.overlap, plan.batch_size, plan.device, plan.precision, align=plan.align,
                        chunk_path=plan.chunk_path, self_ensemble=plan.self_ensemble)  # fmt: skip


def _cluster_settings(plan: RestorePlan) -> TileSettings:
    """The tile settings sent to dask workers: with device "auto" each worker picks its device, and its
    precision too unless the caller asked for one (an explicit precision reaches every worker unchanged)."""
    settings = _settings(plan)
    if plan.worker_picks_device:
        settings = dataclasses.replace(settings, device=AUTO, precision=plan.options.precision)
    return settings


def _chunk_bounds(plan: RestorePlan) -> list[tuple[int, int]]:
    n = plan.layout.planes
    return [(i, min(n, i + plan.chunk_planes)) for i in range(0, n, plan.chunk_planes)]


def _with_neighbours(plan: RestorePlan, canonical):
    """For a context model, the lazy (planes, (2k + 1) * C, Y, X) array of each plane with its neighbours
    (plane-major, reflected at the ends); for a 2-D model, ``canonical`` itself."""
    table = plan.neighbours
    if table is None:
        return canonical
    import dask.array as da

    if not hasattr(canonical, "dask"):
        canonical = da.from_array(canonical, chunks=(1, -1, -1, -1))
    p, c, h, w = canonical.shape
    return canonical[table.reshape(-1)].reshape(p, table.shape[1] * c, h, w)


def _lazy_result(plan: RestorePlan):
    """A dask array of the restored stack (input axes and shape), computed chunk by chunk on demand."""
    canonical = _with_neighbours(plan, plan.layout.to_canonical(plan.source.array))
    canonical = canonical.rechunk((plan.chunk_planes, -1, -1, -1))
    spec = ModelSpec.from_model(plan.model)
    c, (h, w) = plan.layout.channels, plan.layout.yx
    restored = canonical.map_blocks(
        _block_on_worker, spec, plan.normalizer, _settings(plan), plan.out_dtype, plan.channel_mode == "separate",
        plan.mean_mode, plan.local_size, 2 * plan.context + 1, chunks=(canonical.chunks[0], (c,), (h,), (w,)),
        dtype=np.dtype(plan.out_dtype), meta=np.empty((0, 0, 0, 0), plan.out_dtype),
    )  # fmt: skip
    return plan.layout.from_canonical(restored)


def _open_sink(plan: RestorePlan):
    if plan.out_array is not None:
        return ArraySink(plan.layout, plan.out_dtype, into=plan.out_array)
    overwrite = plan.options.overwrite
    if plan.output == "zarr":
        return ZarrSink(plan.layout, plan.out_dtype, plan.out_path, plan.source.metadata, overwrite)
    if plan.output == "tiff":
        return TiffSink(plan.layout, plan.out_dtype, plan.out_path, plan.source.metadata, overwrite)
    if plan.output == "png":
        return PngSink(plan.layout, plan.out_dtype, plan.out_path, overwrite)
    return ArraySink(plan.layout, plan.out_dtype)


def _output_error(plan: RestorePlan, exc: OSError) -> OutputError:
    where = plan.out_path or "the output zarr array"
    return OutputError(f"could not write {where}: {exc.strerror or exc}; nothing partial was kept (free space, "
                       "check permissions, or choose another output)")  # fmt: skip


def _read(canonical, start: int, stop: int) -> np.ndarray:
    block = canonical[start:stop]
    # one reading thread (the caller's): a dask thread pool per core would compete with torch's threads
    return np.asarray(block.compute(scheduler="synchronous") if hasattr(block, "compute") else block)


def _local_blocks(plan: RestorePlan, total: int) -> Iterator[Progress | tuple[int, np.ndarray]]:
    """Restore chunk after chunk here; the next chunk is read while this one computes."""
    canonical = plan.layout.to_canonical(plan.source.array)
    settings, separate = _settings(plan), plan.channel_mode == "separate"
    bounds = _chunk_bounds(plan)
    table = plan.neighbours  # a context model: read each chunk with its neighbouring planes

    def read(start: int, stop: int):
        if table is None:
            return _read(canonical, start, stop), None
        rows = table[start:stop]
        low, high = int(rows.min()), int(rows.max()) + 1
        return _read(canonical, low, high), rows - low
    done = 0
    net = _network(plan)
    with ThreadPoolExecutor(1, thread_name_prefix="gama-ir-read") as reader:
        pending = reader.submit(read, *bounds[0])
        copying = None  # accelerator path: (first plane, PendingBlock) of the chunk before this one
        run = iter_block_resident if settings.resident else iter_block
        try:
            for j, (start, stop) in enumerate(bounds):
                raw, gather = pending.result()
                if j + 1 < len(bounds):
                    pending = reader.submit(read, *bounds[j + 1])
                gen = run(net, raw, plan.normalizer, settings, plan.out_dtype, separate, gather)
                while True:
                    try:
                        done += next(gen)
                    except StopIteration as finished:
                        if not settings.resident:
                            yield start, finished.value
                        else:  # this chunk is queued on the device: now hand over the one before it
                            if copying is not None:
                                yield copying[0], copying[1].result()
                            copying = (start, finished.value)
                        break
                    yield Progress(done, total, f"planes {start + 1}-{stop} of {plan.layout.planes}")
            if copying is not None:
                yield copying[0], copying[1].result()
        finally:
            if settings.resident:
                gen = copying = None  # a cancelled or failed run: drop its blocks, then release them
                resident.release_host_cache(settings.device)


def _distributed_blocks(plan: RestorePlan, total: int) -> Iterator[Progress | tuple[int, np.ndarray]]:
    """Restore chunks on the active dask.distributed cluster; collect them in order."""
    client = _active_client()
    canonical = _with_neighbours(plan, plan.layout.to_canonical(plan.source.array))
    if not hasattr(canonical, "dask"):
        import dask.array as da

        canonical = da.from_array(canonical)
    canonical = canonical.rechunk((plan.chunk_planes, -1, -1, -1))
    # a random key, not a content hash: the same model's key from the run before may still be being
    # released on the scheduler, and a task that depends on it is then cancelled ("lost dependencies")
    spec = client.scatter(ModelSpec.from_model(plan.model), broadcast=True, hash=False)
    args = (plan.normalizer, _cluster_settings(plan), plan.out_dtype, plan.channel_mode == "separate", plan.mean_mode,
            plan.local_size, 2 * plan.context + 1)  # fmt: skip
    chunks = list(canonical.to_delayed().ravel())
    window = 2 * max(1, len(client.scheduler_info().get("workers", {})))  # chunks in flight: bounded memory
    submitted: list = []

    def submit(j: int) -> None:
        # submit() does not compute dask Delayed arguments: turn the chunk into a future the workers read
        block = client.compute(chunks[j])
        submitted.append((block, client.submit(_block_on_worker, block, spec, *args, pure=False)))

    per_chunk = total / max(1, len(chunks))
    try:
        for j in range(min(window, len(chunks))):
            submit(j)
        for j, (start, _stop) in enumerate(_chunk_bounds(plan)):
            block = submitted[j][1].result()
            submitted[j] = (None, None)  # drop the references so the cluster can free the chunk
            if j + window < len(chunks):
                submit(j + window)
            yield Progress(round((j + 1) * per_chunk), total, f"chunk {j + 1} of {len(chunks)} (cluster)")
            yield start, block
    finally:
        client.cancel([f for pair in submitted for f in pair if f is not None])


def iter_restore(data, model=None, options: RestoreOptions | None = None, *, plan: RestorePlan | None = None,
                 **overrides) -> Generator[Progress, None, object]:  # fmt: skip
    """Restore ``data`` step by step: yields :class:`Progress` after each batch, returns the result.

    Takes the arguments of :func:`restore` except ``progress`` and ``cancel``, or ``plan=`` a
    :class:`RestorePlan` from :func:`plan_restore`. The first step carries the plan (``Progress.plan``).
    Closing the generator (``gen.close()``) stops between batches and removes any partial output file.
    """
    if plan is not None and (model is not None or options is not None or overrides):
        raise InvalidInputError("give iter_restore either plan= or a model and options, not both (the plan holds them)")
    plan = plan or plan_restore(data, model, options, **overrides)
    if plan.output == "dask":
        return _lazy_result(plan)
    per_image = plan.tiles_per_image
    total = plan.layout.planes * plan.samples_per_plane * per_image  # tiles; iter_tiles yields tiles per batch
    yield Progress(0, total, plan.describe(), plan)
    try:
        sink = _open_sink(plan)
    except OSError as exc:
        raise _output_error(plan, exc) from exc
    blocks = _distributed_blocks(plan, total) if plan.distributed else _local_blocks(plan, total)
    try:
        for item in blocks:
            if isinstance(item, Progress):
                yield item
            else:
                sink.write(*item)
        result = sink.finish()
    except BaseException as exc:
        blocks.close()
        sink.abort()
        if isinstance(exc, OSError) and not isinstance(exc, OutputError) and plan.out_path is not None:
            raise _output_error(plan, exc) from exc
        raise
    return result


def restore(
    data,
    model=None,
    options: RestoreOptions | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    **overrides,
):
    """Restore (denoise) every 2-D plane of an image or stack with a GAMA-IR model.

    Parameters
    ----------
    data : numpy.ndarray, dask.array.Array, zarr.Array, memmap, str or PathLike
        Any shape with Y and X axes (YX, ZYX, TZYX, CYX, YXC, TCZYX, ...); uint8/uint16/int/float.
        Paths: TIFF (OME, BigTIFF, ImageJ) or zarr. The input is never modified.
    model : str, PathLike, GAMAIR or None
        A shipped or user model name, a path to ``NAME.safetensors``, or a loaded network (never
        changed: it may be shared by threads). None picks a fast shipped model for the data (its noise and background).
    options : RestoreOptions, optional
        The options below as one object; keywords override its fields.
    progress : callable(done, total), optional
        Called after each batch with the tiles done so far and the total number of tiles.
    cancel : threading.Event, optional
        Checked between batches (anything with ``is_set()``); when set, stops with
        :class:`RestoreCancelled` and leaves no output.
{options}

    Returns
    -------
    numpy.ndarray, dask.array.Array or str
        numpy in, numpy out (same shape and axes); lazy in with ``out=None``, a lazy dask array;
        with ``out`` a path, the output path; with ``out`` a zarr array, that array (which stays the
        caller's: after a failure or cancel the planes written so far remain in it).

    Raises
    ------
    InvalidInputError, InvalidDtypeError, ModelFileError
        Bad data, options or model files; the message names the value and what is accepted.
    OutputError
        The output could not be written (disk full, permission denied); nothing partial is left.
    RestoreCancelled
        ``cancel`` was set.

    Examples
    --------
    >>> import numpy as np
    >>> noisy = np.random.default_rng(0).poisson(20, (2, 64, 64)).astype(np.uint16)
    >>> clean = restore(noisy, axes="ZYX")
    >>> clean.shape, clean.dtype
    ((2, 64, 64), dtype('uint16'))
    """
    if progress is not None and not callable(progress):
        raise InvalidInputError(f"progress must be a callable(done, total) or None, got {type(progress).__name__}")
    if cancel is not None and not callable(getattr(cancel, "is_set", None)):
        raise InvalidInputError(f"cancel must be a threading.Event (anything with is_set()) or None, got {type(cancel).__name__}")
    gen = iter_restore(data, model, options, **overrides)
    with sigterm_raises_systemexit():
        try:
            while True:
                if cancel is not None and cancel.is_set():
                    gen.close()
                    raise RestoreCancelled("restore was cancelled; no output was kept")
                step = next(gen)
                if progress is not None:
                    progress(step.done, step.total)
        except StopIteration as stop:
            return stop.value
        finally:
            gen.close()


if restore.__doc__:  # None under python -OO
    restore.__doc__ = restore.__doc__.replace("{options}", RestoreOptions.describe_fields())
