"""Ctrl-C that is never lost: during long work, SIGINT only sets a flag, checked at safe points.

Python raises KeyboardInterrupt wherever the interpreter happens to be when the signal
arrives. When that is inside a weakref callback or a ``__del__`` (h5py closes its objects
through such finalizers, many times per token of ``spikelm lm generate``), the exception is
printed as "Exception ignored in ..." and swallowed, and the work runs on. Inside
:func:`deferred_interrupts` the first Ctrl-C is remembered instead, and the work loop calls
``check()`` between tokens or chunks of steps, where raising is safe: the run stops there,
its file is closed as ``.partial`` and the command exits 130. A second Ctrl-C raises at once.
"""
from __future__ import annotations

import contextlib
import signal
import threading


class Interrupts:
    """The flag set by SIGINT inside :func:`deferred_interrupts`."""

    def __init__(self):
        self.pending = False

    def _handler(self, signum, frame):
        if self.pending:            # a second Ctrl-C: the user insists, stop wherever we are
            raise KeyboardInterrupt
        self.pending = True

    def check(self):
        """Raise KeyboardInterrupt if Ctrl-C was pressed since the block began."""
        if self.pending:
            raise KeyboardInterrupt


@contextlib.contextmanager
def deferred_interrupts():
    """Within the block, Ctrl-C sets a flag that ``check()`` turns into KeyboardInterrupt.

    Outside the main thread (where signal handlers cannot be set) the block runs with
    Python's own handling, and ``check()`` never raises.
    """
    state = Interrupts()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    previous = signal.signal(signal.SIGINT, state._handler)
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
