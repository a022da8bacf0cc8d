"""The one bridge between core generators (``iter_restore``, ``iter_finetune``) and napari's threads.

A core generator yields ``Progress(done, total, message)`` and returns its result. Here it runs in a
napari ``thread_worker``: ``yielded`` moves the caller's bar and napari's Activity dock, ``returned``
hands the result to the caller, ``errored`` becomes a napari notification, and ``worker.quit()``
stops at the next yield (between batches), after which the worker closes the generator in its own
thread, so that core removes any partial output there and not in the GUI thread. No second thread,
no queue.
"""

from __future__ import annotations

import logging
from typing import Callable

from napari.qt.threading import GeneratorWorker, create_worker
from napari.utils.notifications import show_error

from ..errors import GamaIRError

log = logging.getLogger(__name__)


class _JobFailed(Exception):
    """A RuntimeError from core (e.g. torch's), carried out of the worker thread.

    superqt takes a RuntimeError for a deleted worker and drops it without ``errored`` or ``finished``,
    which would leave a widget running forever.
    """


def report_error(exc: BaseException) -> None:
    """Show an error as a napari notification: our own errors as they are, others with their type."""
    if isinstance(exc, _JobFailed):
        exc = exc.__cause__
    if isinstance(exc, GamaIRError):
        show_error(str(exc))
    else:
        log.error("napari-gama-ir job failed", exc_info=exc)
        show_error(f"{type(exc).__name__}: {exc}")


class _ClosingWorker(GeneratorWorker):
    """napari's generator worker, except that once ``quit()`` stopped it, it closes the generator itself.

    superqt only stops resuming a quit generator; closing it later from a ``finished`` slot would run
    core's cleanup (reader threads, ``TiffPlaneWriter.abort``, removing partial files) in the GUI thread.
    """

    def work(self):
        result = super().work()
        if self.abort_requested:
            self._gen.close()  # still in the worker thread; GeneratorExit reaches core's generator
        return result


def _relay(gen):
    """The generator the worker runs: core's, unchanged (its return value becomes ``returned``)."""
    try:
        return (yield from gen)
    except RuntimeError as exc:
        raise _JobFailed(str(exc)) from exc


def _on_yielded(worker, on_progress, step) -> None:
    if on_progress is not None:  # first: napari's bar processes Qt events, so later steps could overtake this one
        on_progress(step)
    pbar = getattr(worker, "pbar", None)
    if pbar is not None and step.total:
        if pbar.total != step.total:
            pbar.total = step.total  # known only once core has planned the job
        pbar.n = min(step.done, step.total)
        pbar.update(0)


def start_worker(
    gen_fn: Callable,
    kwargs: dict,
    on_progress: Callable | None,
    on_done: Callable,
    *,
    on_error: Callable[[BaseException], None] = report_error,
    on_finished: Callable[[], None] | None = None,
    desc: str = "GAMA-IR",
):
    """Run ``gen_fn(**kwargs)`` in a napari thread worker and start it.

    Parameters
    ----------
    gen_fn : callable
        A core generator function such as :func:`napari_gama_ir.iter_restore`.
    kwargs : dict
        Its arguments.
    on_progress : callable(Progress) or None
        Called in the main thread after each yield.
    on_done : callable(result)
        Called with the generator's return value (not called when cancelled or failed).
    on_error : callable(exception)
        Called when the generator raises; the default shows a napari notification.
    on_finished : callable(), optional
        Called at the very end, whatever happened (done, failed or cancelled).
    desc : str
        Label of the job in napari's Activity dock.

    Returns
    -------
    napari.qt.threading.GeneratorWorker
        Call ``worker.quit()`` to cancel: the job stops at its next yield and the generator is closed in
        the worker thread.
    """
    gen = gen_fn(**kwargs)
    # total 0 = indeterminate until the first Progress tells the total; the dict still makes the Activity bar
    worker = create_worker(
        _relay, gen, _progress={"total": 0, "desc": desc}, _worker_class=_ClosingWorker, _ignore_errors=True,
        _start_thread=False,
    )  # fmt: skip
    worker.yielded.connect(lambda step: _on_yielded(worker, on_progress, step))
    worker.returned.connect(on_done)
    worker.errored.connect(on_error)
    if on_finished is not None:
        worker.finished.connect(on_finished)
    worker.start()
    return worker
