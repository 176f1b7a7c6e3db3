"""Progress of the long phases of a converted LM (load, dequantize, calibrate, quantize, compile,
reference, spiking tokens), as tqdm bars on stderr.

Off unless a caller turns it on for a block of work (the ``spikelm lm`` commands do, unless
``--no-progress``)::

    with progress.shown():
        snn = convert(...)           # its phases report here

Deep code reports without a parameter threaded through every family's builder: :func:`bar`
(a counted phase) and :func:`phase` (one opaque call, with a running clock) read the setting
of the calling context (a :mod:`contextvars` variable, so threads and tasks keep their own).
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
import threading
import time

from tqdm import tqdm

_SHOWN = contextvars.ContextVar("spikelm_lm_progress", default=False)
#: seconds between redraws of an opaque phase's clock
TICK = 0.5
#: seconds a phase or bar runs before it shows (short ones print nothing, so a command that
#: fails at once prints its one error line alone)
DELAY = 2.0


@contextlib.contextmanager
def shown(on: bool = True):
    """Show progress bars in this block (``on=False``: hide them, e.g. for ``--no-progress``)."""
    token = _SHOWN.set(bool(on))
    try:
        yield
    finally:
        _SHOWN.reset(token)


def enabled() -> bool:
    """Whether bars are shown in the calling context."""
    return _SHOWN.get()


def bar(desc: str, total=None, unit: str = "it", **kw) -> tqdm:
    """A tqdm bar on stderr, shown after :data:`DELAY` seconds where progress is shown; use as a
    context manager or close it."""
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=not _SHOWN.get(), dynamic_ncols=True,
                delay=DELAY, **kw)


@contextlib.contextmanager
def phase(desc: str):
    """One call whose length is unknown (loading a file, compiling): after :data:`DELAY` seconds, a
    line with a running clock, redrawn every :data:`TICK` seconds by a helper thread, left with
    the time it took (cleared if the call fails). Yields a dict; its ``"seconds"`` is set on exit."""
    out = {"seconds": 0.0}
    t0 = time.perf_counter()
    if not _SHOWN.get():
        try:
            yield out
        finally:
            out["seconds"] = time.perf_counter() - t0
        return
    err = sys.stderr
    stop = threading.Event()
    lock = threading.Lock()
    line = []

    def tick():
        if stop.wait(DELAY):
            return
        with lock:
            if stop.is_set():
                return
            b = tqdm(total=None, desc=desc, file=err, bar_format="{desc}: {elapsed}", dynamic_ncols=True)
            b.start_t = b._time() - (time.perf_counter() - t0)  # from the phase's start (tqdm's clock is time.time)
            b.refresh()
            line.append(b)
        while not stop.wait(TICK):
            with lock:
                b.refresh()

    clock = threading.Thread(target=tick, name="spikelm-progress", daemon=True)
    clock.start()
    ok = False
    try:
        yield out
        ok = True
    finally:
        with lock:
            stop.set()
        clock.join()
        out["seconds"] = time.perf_counter() - t0
        for b in line:
            b.leave = ok
            b.close()
