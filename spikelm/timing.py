"""Time spent compiling, told apart from time spent simulating.

The first run of a network kind compiles its Numba kernels (seconds; then cached on disk), so
a cold ``spikelm run`` printed "run 17 s" where a warm one printed "run 2 s". :class:`CompileClock`
listens to Numba's own events: the compiler lock is held while a kernel is compiled or loaded
from the on-disk cache, and the compile event fires only for real compilation, so commands
print that time apart from run time and say which it was.
"""
from __future__ import annotations

import time

__all__ = ["CompileClock"]


class CompileClock:
    """Seconds Numba spent compiling or loading compiled kernels inside the ``with`` block.

    ``seconds``: time holding Numba's compiler lock (compiling, or loading from the cache);
    ``compiled``: the part spent compiling. Nested events are counted once.

    Examples
    --------
    >>> with CompileClock() as clock:
    ...     result = sim.run(1000)              # doctest: +SKIP
    >>> run_s = result.wall_s - clock.seconds   # doctest: +SKIP
    """

    #: Numba event kind -> attribute that sums its outermost durations.
    KINDS = {"numba:compiler_lock": "seconds", "numba:compile": "compiled"}

    def __init__(self):
        self.seconds = 0.0
        self.compiled = 0.0
        self._listeners = []

    def __enter__(self):
        try:
            from numba.core import event
        except ImportError:     # no Numba, nothing compiles
            return self
        for kind, attr in self.KINDS.items():
            listener = _Outermost(self, attr, event.Listener)
            event.register(kind, listener)
            self._listeners.append((kind, listener))
        return self

    def __exit__(self, *exc):
        if self._listeners:
            from numba.core import event

            for kind, listener in self._listeners:
                event.unregister(kind, listener)
            self._listeners = []
        return False


def _Outermost(clock, attr, base):
    """A Numba event listener adding the duration of each outermost event to ``clock.<attr>``."""

    class Listener(base):
        depth, start = 0, 0.0

        def on_start(self, ev):
            if self.depth == 0:
                self.start = time.perf_counter()
            self.depth += 1

        def on_end(self, ev):
            self.depth -= 1
            if self.depth == 0:
                setattr(clock, attr, getattr(clock, attr) + time.perf_counter() - self.start)

    return Listener()
