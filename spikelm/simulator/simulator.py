"""The Simulator: runs a Network step by step on a chosen backend, in chunks of steps."""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

from spikelm.errors import ConfigError

from .backends import get_backend
from .monitors import RateMonitor, SpikeMonitor
from .plan import Plan
from .recording import ChunkBuffers


def _threads(name, backend, threads, n_neurons):
    """The thread count: given, else $SPIKELM_THREADS, else the backend's default (numba); 1 elsewhere."""
    check = getattr(backend, "check_threads", None)
    if check is None:
        if threads not in (None, 1):
            raise ConfigError(f"threads: the {name} backend runs on one thread; got threads={threads!r} "
                              "(threads apply to the numba backend)")
        return 1
    if threads is None:
        env = os.environ.get("SPIKELM_THREADS", "").strip()
        if not env:
            return backend.default_threads(n_neurons)
        try:
            threads = int(env)
        except ValueError:
            raise ConfigError(f"SPIKELM_THREADS: must be an integer number of threads, got {env!r}") from None
    return check(threads)


@dataclass
class RunResult:
    """What one call of :meth:`Simulator.run` did."""

    steps: int
    quiescent: bool
    wall_s: float
    spikes: dict = field(default_factory=dict)
    synops: dict = field(default_factory=dict)


class Simulator:
    """Run ``network`` on ``backend`` ("numpy" reference, "numba" default, "cupy").

    Parameters
    ----------
    network : spikelm.network.Network
    backend : str
    record : "all", None or a list of population names whose spikes are kept
    state : list of StateMonitor
    chunk_steps : int
        Steps per compiled call (between record flushes).
    spike_buffer : int
        Spikes held in the record buffer before a flush.
    weight_snapshots : dict, optional
        ``{projection name: every_steps}``: weights written to the run file (``writer``)
        at step 0 and every ``every_steps`` steps.
    in_memory : bool
        Keep the recorded spikes, per-step counts and state samples in memory (default).
        False keeps only totals: for runs that stream their record to a file, whose memory
        then does not grow with model time.
    threads : int, optional
        Threads of the numba backend (default: ``$SPIKELM_THREADS``, else every core Numba
        has, but at most one per 10,000 neurons: below that a thread's share of a step is
        shorter than the synchronisation it costs). Any number gives the spikes of one
        thread, bit for bit. The numpy and cupy backends take no threads (only None or 1).
    """

    def __init__(self, network, backend="numba", record="all", state=(), chunk_steps=2000,
                 spike_buffer=1_000_000, weight_snapshots=None, in_memory=True, threads=None):
        self.backend_name = backend
        self.backend = get_backend(backend)
        self.threads = _threads(backend, self.backend, threads, network.n_neurons)
        self.network = network
        if not network.populations:
            raise ConfigError("network has no populations; add at least one before simulating")
        for name, v in (("chunk_steps", chunk_steps), ("spike_buffer", spike_buffer)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ConfigError(f"Simulator: {name} must be an integer >= 1, got {v!r}")
        self._claim_memory(network, spike_buffer, chunk_steps)
        self.plan = Plan(network)
        self.plan.threads = self.threads
        self.t = 0
        names = list(network.populations)
        if record == "all":
            record = names
        record = list(record or [])
        for r in record:
            network.population(r, "record: ")
        self.spikes = SpikeMonitor(record, keep=in_memory, dt=network.dt)
        self.rates = RateMonitor(names, {p: network.populations[p].n for p in names}, network.dt, keep=in_memory)
        self.state_monitors = list(state)
        for m in self.state_monitors:
            m.keep = bool(in_memory)
        rec_mask = np.zeros(self.plan.N, dtype=np.uint8)
        for r in record:
            i = self.plan.pop_index[r]
            rec_mask[self.plan.pop_lo[i]:self.plan.pop_hi[i]] = 1
        rows, cols, every = self._sample_layout()
        self._every = every
        if cols:
            # the sample buffer of one chunk stays under 64 MB however many neurons are sampled
            chunk_steps = min(chunk_steps, max(1, (64 << 20) // (8 * len(cols))) * every)
        self.buffers = ChunkBuffers(self.plan, rec_mask, chunk_steps, spike_buffer, rows, cols, every)
        from spikelm.plasticity import pack

        self.learn = pack(self.plan)
        self.weight_snapshots = dict(weight_snapshots or {})
        self._last_snapshot = {}
        for name, every in self.weight_snapshots.items():
            if name not in network.projections:
                raise ConfigError(f"weight_snapshots: projection {name!r} is not defined; projections: "
                                  f"{', '.join(network.projections) or 'none'}")
            if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
                raise ConfigError(f"weight_snapshots: every must be an integer >= 1 step, got {every!r}")
        self.wall_s = 0.0

    def _sample_layout(self):
        rows, cols, everys = [], [], []
        self._sample_slices = []
        for m in self.state_monitors:
            pop = self.network.population(m.population, "state monitor: ")
            i = self.plan.pop_index[pop.name]
            neurons = np.arange(pop.n) if m.neurons is None else m.neurons
            if neurons.size and (neurons.min() < 0 or neurons.max() >= pop.n):
                raise ConfigError(f"state monitor of '{pop.name}': neuron indices must lie in [0, {pop.n})")
            start = len(rows)
            for var in m.variables:
                if var not in pop.model.state_vars:
                    raise ConfigError(f"state monitor of '{pop.name}': unknown variable {var!r}; "
                                      f"{pop.model.name} has {', '.join(pop.model.state_vars)}")
                r = pop.model.state_vars.index(var)
                rows += [r] * neurons.size
                cols += list(self.plan.pop_lo[i] + neurons)
            self._sample_slices.append((start, len(rows)))
            if m.every < 1:
                raise ConfigError(f"state monitor of '{pop.name}': 'every' must be >= 1 step, got {m.every}")
            everys.append(m.every)
        return rows, cols, math.gcd(*everys) if everys else 1

    @staticmethod
    def _claim_memory(network, spike_buffer, chunk_steps):
        """Refuse before building when the event queue and record buffers would not fit."""
        n = network.n_neurons
        max_delay = max((k.max_delay for k in network.projections.values()), default=1)
        queue = (max_delay + 1) * (2 * 8 * n + 8)
        buffers = 17 * max(spike_buffer, n + 1) + 8 * chunk_steps * len(network.populations)
        network.budget.check(queue + buffers, f"simulator: an event queue of {max_delay + 1} slots x {n:,} "
                                              f"neurons and the record buffers")

    @property
    def time_ms(self):
        return self.t * self.network.dt

    @property
    def synops(self):
        """SynOps so far, per projection name."""
        return {k.name: int(self.plan.synops[i]) for i, k in enumerate(self.plan.projs)}

    def run(self, steps=None, duration=None, until_quiescent=False, max_steps=None, progress=False, writer=None,
            on_chunk=None):
        """Advance the simulation.

        Give ``steps`` (or ``duration`` in ms), or ``until_quiescent=True`` with a step cap
        ``max_steps``. ``writer`` (a :class:`spikelm.io.sonata.SpikeWriter`) receives the
        spikes and samples chunk by chunk and is flushed after each. ``on_chunk()``, when
        given, is called after each chunk (``spikelm run`` stops there on Ctrl-C). Returns a
        :class:`RunResult`.
        """
        if until_quiescent:
            if max_steps is None:
                raise ConfigError("run(until_quiescent=True) needs a step cap: give max_steps")
            total = int(max_steps)
        elif duration is not None:
            if not (isinstance(duration, (int, float)) and math.isfinite(duration) and duration > 0):
                raise ConfigError(f"duration must be a positive number of ms, got {duration!r}")
            total = int(round(duration / self.network.dt))
        elif steps is not None:
            total = steps
        else:
            raise ConfigError("run() needs steps, duration or until_quiescent=True with max_steps")
        if isinstance(total, bool) or not isinstance(total, (int, np.integer)) or total < 0:
            raise ConfigError(f"steps must be an integer >= 0, got {total!r}")
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=int(total), unit="step", unit_scale=True, desc=f"{self.backend_name}", leave=False)
        done, quiet = 0, False
        t_start = time.perf_counter()
        spikes0 = {p: self.spikes.count(p) for p in self.spikes.populations}
        syn0 = dict(self.synops)
        buf = self.buffers
        try:
            while done < total and not quiet:
                buf.reset()
                n = min(buf.max_steps, total - done)
                if writer is not None and self.weight_snapshots:
                    n = self._snapshot_weights(writer, n)
                ran, quiet = self.backend.run_chunk(self.plan, buf, self.t, n, until_quiescent, self.learn)
                self._flush(buf, ran, writer)
                self.t += ran
                done += ran
                if bar is not None:
                    bar.update(ran)
                if on_chunk is not None:
                    on_chunk()
                if ran == 0 and not quiet:
                    raise RuntimeError("the spike record buffer is too small for one step; raise spike_buffer")
        finally:
            if bar is not None:
                bar.close()
        wall = time.perf_counter() - t_start
        self.wall_s += wall
        return RunResult(done, quiet, wall,
                         {p: self.spikes.count(p) - spikes0[p] for p in self.spikes.populations},
                         {k: v - syn0[k] for k, v in self.synops.items()})

    def _flush(self, buf, ran, writer):
        n = int(buf.n[0])
        steps, idx, val = buf.steps[:n], buf.idx[:n], buf.val[:n]
        for name in self.spikes.populations:
            i = self.plan.pop_index[name]
            lo, hi = self.plan.pop_lo[i], self.plan.pop_hi[i]
            sel = (idx >= lo) & (idx < hi)
            s, j, v = steps[sel], idx[sel] - lo, val[sel]
            self.spikes.add(name, s, j, v)
            if writer is not None and s.size:
                writer.append(name, s, j, v)
        self.rates.add(buf.counts[:ran])
        ns = int(buf.n[2])
        for m, (a, b) in zip(self.state_monitors, self._sample_slices):
            st = buf.sample_steps[:ns]
            keep = st % m.every == 0
            if keep.any():
                steps_kept, data = st[keep].copy(), buf.samples[:ns][keep][:, a:b].copy()
                m.add(steps_kept, data)
                if writer is not None:
                    n_neu = (b - a) // len(m.variables)
                    pop = self.network.populations[m.population]
                    ids = np.arange(pop.n) if m.neurons is None else m.neurons
                    for k, var in enumerate(m.variables):
                        writer.add_state(m.population, var, ids, steps_kept, data[:, k * n_neu:(k + 1) * n_neu],
                                         units=pop.model.unit(var))
        if writer is not None:
            # one chunk at a time on disk: a crash loses at most the chunk being simulated
            writer.flush()

    def _snapshot_weights(self, writer, n):
        """Write due weight snapshots; return the chunk length up to the next one."""
        for name, every in self.weight_snapshots.items():
            if self.t % every == 0 and self._last_snapshot.get(name) != self.t:
                proj = self.network.projections[name]
                writer.add_weights(name, self.t, proj.w, units=proj.post.model.input_unit)
                self._last_snapshot[name] = self.t
            n = min(n, every - self.t % every)
        return n

    def spikes_as_tables(self):
        """Recorded spikes as ``{population: SpikeTable}`` (what :func:`spikelm.io.sonata.read_spikes` returns)."""
        from spikelm.simulator.spike_table import SpikeTable

        out = {}
        for name in self.spikes.populations:
            steps, ids, vals = self.spikes.get(name)
            out[name] = SpikeTable(timestamps=steps * self.network.dt, node_ids=ids.astype(np.uint64), values=vals, sorting="by_time",
                                   dt=self.network.dt, n_nodes=self.network.populations[name].n)
        return out

    # -- conservation counters -------------------------------------------------------------
    @property
    def events(self):
        """(pushed, delivered, pending) synaptic events so far."""
        q = self.plan.queue
        return q.pushed, q.delivered, q.pending

    def set_threads(self, threads):
        """Run the next steps on ``threads`` threads (numba; the spikes do not depend on it)."""
        self.threads = _threads(self.backend_name, self.backend, threads, self.network.n_neurons)
        self.plan.threads = self.threads

    def set_plasticity(self, name, enabled):
        """Switch the plasticity rules of projection or population ``name`` on or off (from the next step)."""
        if self.learn is None:
            raise ConfigError(f"plasticity: the network has no rules; cannot switch {name!r}")
        self.learn.set_enabled(name, enabled)

    def reset_window(self, populations=None):
        """Restart EI-IF threshold windows (t counts from t0 again) at the current step."""
        for name in populations or list(self.network.populations):
            self.network.populations[name].window_start = self.t
        self.plan.set_windows()
