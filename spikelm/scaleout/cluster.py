"""Open a Dask client from ``--scheduler`` and run tasks with a progress bar.

``--scheduler`` takes:

- ``local``: a LocalCluster on this machine, one single-threaded worker process per core;
- ``local:N``: the same with N worker processes;
- ``tcp://HOST:PORT`` (or ``tls://...``): the scheduler of a running cluster;
- ``FILE.json``: a scheduler file, as written by ``dask scheduler --scheduler-file``;
- ``serial``: no Dask at all; the tasks run one after another in this process.

Workers are single-threaded processes: spikelm runs are single-threaded compiled loops, and
one process per core avoids both the GIL and oversubscribed BLAS threads (Dask's nanny also
sets OMP_NUM_THREADS=1 in its workers). A remote worker must run the same spikelm version as
the client; :func:`open_client` checks that before anything is submitted.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import time
import uuid

from spikelm.errors import ConfigError

SCHEDULER_HELP = ("local (a worker process per core, default), local:N, tcp://HOST:PORT of a running "
                  "scheduler, a scheduler file FILE.json, or serial (no Dask, in this process)")
_LOCAL = re.compile(r"local(?::(\d+))?\Z")
_ADDRESS = re.compile(r"[a-z][a-z0-9+.-]*://\S+\Z")
#: At most this many local worker processes (a typo such as local:1000 would exhaust memory).
MAX_LOCAL_WORKERS = 256
#: How long to wait for a scheduler file and for the first worker of a remote cluster.
WAIT_FOR_WORKERS_S = 120


def require_dask(what: str):
    """Import ``distributed`` or raise one line naming the extra that brings it."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise ConfigError(f"{what} needs Dask distributed, which is not installed; install the extra: "
                          "pip install 'spikelm[distributed]' (or: pip install \"dask[distributed]\")") from None


def parse_scheduler(text, option: str = "--scheduler"):
    """``("serial", None)``, ``("local", n_workers or None)``, ``("address", str)``, ``("file", path)``,
    or ``("client", client)`` for a ``distributed.Client`` object."""
    if not isinstance(text, str) and hasattr(text, "submit"):
        return "client", text
    if text == "serial":
        return "serial", None
    m = _LOCAL.match(text or "")
    if m:
        n = int(m.group(1)) if m.group(1) else None
        if n is not None and not 1 <= n <= MAX_LOCAL_WORKERS:
            raise ConfigError(f"{option} {text}: N must be 1 to {MAX_LOCAL_WORKERS}")
        return "local", n
    if _ADDRESS.match(text or ""):
        return "address", text
    if text and text.endswith(".json"):
        return "file", text
    raise ConfigError(f"{option} {text!r}: allowed: {SCHEDULER_HELP}")


@contextlib.contextmanager
def open_client(scheduler: str, what: str, option: str = "--scheduler"):
    """A connected ``distributed.Client`` (None for ``serial``); closes what it started.

    ``scheduler`` may also be a ``distributed.Client`` the caller owns: it is used as is.
    """
    if not isinstance(scheduler, str):
        _check_versions(scheduler, option, str(scheduler))
        yield scheduler
        return
    kind, arg = parse_scheduler(scheduler, option)
    if kind == "serial":
        yield None
        return
    require_dask(what)
    from distributed import Client

    cluster = None
    try:
        if kind == "local":
            cluster = local_cluster(arg)
            client = Client(cluster)
        else:
            if kind == "file":
                _wait_for_file(arg, option)
                arg = read_scheduler_file(arg, option)
            try:
                client = Client(arg, timeout="30s")
            except (OSError, TimeoutError, ValueError, TypeError, AssertionError) as e:
                raise ConfigError(f"{option} {scheduler}: cannot reach the scheduler at {arg} "
                                  f"({type(e).__name__}: {e})") from None
            try:  # workers started beside the scheduler (a batch job) may still be connecting
                client.wait_for_workers(1, timeout=WAIT_FOR_WORKERS_S)
            except TimeoutError:
                client.close()
                raise ConfigError(f"{option} {scheduler}: no worker joined within {WAIT_FOR_WORKERS_S} s; start some "
                                  f"with: dask worker {scheduler if kind == 'address' else '--scheduler-file ' + arg} "
                                  "--nthreads 1") from None
        try:
            _check_versions(client, option, scheduler)
            yield client
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()


def local_cluster(n_workers: int | None = None):
    """A LocalCluster of ``n_workers`` single-threaded worker processes (default: one per core).

    The workers import the spikelm that this process runs (a source checkout included), so
    their results are this process's results.
    """
    require_dask("a local Dask cluster")
    import dask
    from dask.system import CPU_COUNT
    from distributed import LocalCluster

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    # The statistical profiler samples every worker thread each 10 ms (taking the GIL): off, as
    # our tasks are long compiled loops. Dask's nanny sets MALLOC_TRIM_THRESHOLD_, which also
    # freezes glibc's mmap threshold: every large NumPy array of a network build is then a
    # fresh mmap, ~10x the page faults of a plain process (measured: 66k vs 5k per 6 CUBA
    # points); unset. Worker deaths are reported per task, so the workers' own log lines
    # (heartbeat failures at shutdown) stay quiet.
    with dask.config.set({"distributed.worker.profile.enabled": False,
                          "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        return LocalCluster(n_workers=n_workers or CPU_COUNT, threads_per_worker=1, processes=True,
                            dashboard_address=None, silence_logs=logging.CRITICAL, env={"PYTHONPATH": path})


def _check_versions(client, option, scheduler):
    import spikelm

    try:
        versions = client.run(_spikelm_version)
    except ImportError as e:
        raise ConfigError(f"{option} {scheduler}: a worker cannot import spikelm ({e}); install it there") from None
    bad = {w: v for w, v in versions.items() if v != spikelm.__version__}
    if bad:
        w, v = next(iter(bad.items()))
        raise ConfigError(f"{option} {scheduler}: worker {w} runs spikelm {v}, this client {spikelm.__version__}; "
                          "install the same version on every machine (results must equal serial runs)")
    if not versions:
        raise ConfigError(f"{option} {scheduler}: the scheduler has no workers; start some with: "
                          "dask worker SCHEDULER_ADDRESS --nthreads 1")


def read_scheduler_file(path, option: str = "--scheduler") -> str:
    """The scheduler address a scheduler file (``dask scheduler --scheduler-file``) holds.

    The file is read here, not by Dask: a damaged one is one line naming it and its field,
    where ``distributed`` would fail with an AssertionError or a TypeError.
    """
    from spikelm.errors import FileFormatError
    from spikelm.io.textfile import read_text

    what = "a Dask scheduler file (JSON with an 'address')"
    text = read_text(path, what, max_bytes=1 << 20)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise FileFormatError(f"{option} {path}: not JSON ({str(e)[:100]}); expected {what}") from None
    if not isinstance(data, dict):
        raise FileFormatError(f"{option} {path}: a JSON {type(data).__name__}; expected {what}")
    address = data.get("address")
    if not isinstance(address, str) or not _ADDRESS.match(address):
        raise FileFormatError(f"{option} {path}: address: {str(address)[:80]!r}; expected a scheduler address "
                              "such as tcp://HOST:PORT")
    return address


def _wait_for_file(path, option):
    """A batch job may start the scheduler and spikelm together: give the scheduler time to write its file."""
    deadline = time.monotonic() + WAIT_FOR_WORKERS_S
    if os.path.exists(path) and not os.path.isfile(path):
        raise ConfigError(f"{option} {path}: not a regular file (a directory or a pipe); expected a scheduler file")
    if not os.path.isfile(path):
        print(f"waiting up to {WAIT_FOR_WORKERS_S} s for the scheduler file {path}", file=sys.stderr)
    while not os.path.isfile(path):
        if time.monotonic() > deadline:
            raise ConfigError(f"{option} {path}: no such scheduler file (waited {WAIT_FOR_WORKERS_S} s for "
                              "dask scheduler --scheduler-file to write it)")
        time.sleep(0.2)


def _spikelm_version():
    import spikelm

    return spikelm.__version__


def run_tasks(client, tasks, desc: str, progress: bool = True):
    """Run ``tasks`` (a list of ``(label, func, args)``) and yield ``(index, result, error)``.

    As each task finishes: ``result`` is what it returned and ``error`` None, or ``result`` is
    None and ``error`` one line (the exception, or the worker deaths that made Dask give up).
    A task whose worker dies is rerun on another worker by the scheduler. ``client`` None
    runs the tasks here, one after another.
    """
    from tqdm import tqdm

    with tqdm(total=len(tasks), desc=desc, unit="task", file=sys.stderr, disable=not progress,
              dynamic_ncols=True) as bar:
        if client is None:
            for i, (_, func, args) in enumerate(tasks):
                try:
                    out = (i, func(*args), None)
                except Exception as e:
                    out = (i, None, _one_line(e))
                bar.update()
                yield out
            return
        from distributed import as_completed

        token = uuid.uuid4().hex[:8]
        futures = [client.submit(func, *args, key=f"spikelm-{label}-{token}", pure=False)
                   for label, func, args in tasks]
        index = {f.key: i for i, f in enumerate(futures)}
        try:
            for fut in as_completed(futures):
                i = index[fut.key]
                try:
                    out = (i, fut.result(), None)
                except Exception as e:
                    out = (i, None, _one_line(e))
                fut.release()
                bar.update()
                yield out
        finally:
            client.cancel([f for f in futures if not f.done()])


def say(text: str, progress: bool):
    """A line on stderr that does not break the progress bar."""
    from tqdm import tqdm

    (tqdm.write if progress else print)(text, file=sys.stderr)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or "(no message)"
    return f"{type(e).__name__}: {text}"
