"""The benchmark networks' parameters and statistics, shared by brian2_net.py and nest_net.py.

Both scripts import this module (it sits beside them), so the peers always run exactly the
same networks. It runs in the peers' venv (numpy only, imported where needed).
"""

from __future__ import annotations

# ---------------------------------------------------------------- parameters
# Units: ms, mV, Hz; weights in mV (added to the target variable). "delay" is spikelm's
# (d steps); each peer maps it to its own convention (docs/coming-from-brian2-nest.md).

CUBA = {
    "n_exc": 3200,
    "n_inh": 800,
    "p_connect": 0.02,
    "tau_m": 20.0,
    "tau_e": 5.0,
    "tau_i": 10.0,
    "v_th": -50.0,
    "v_reset": -60.0,
    "e_l": -49.0,
    "t_ref": 5.0,
    "w_e": 60 * 0.27 / 10,  # 1.62 mV
    "w_i": -20 * 4.5 / 10,  # -9.0 mV
    "delay": 0.1,  # one step
    "dt": 0.1,
    "duration_ms": 10000.0,
}

CUBA40K = dict(CUBA, n_exc=32000, n_inh=8000, p_connect=0.002, duration_ms=1000.0)

IZHIKEVICH = {
    "n_exc": 800,
    "n_inh": 200,
    "w_exc_scale": 0.5,  # exc rows: 0.5 * U(0, 1)
    "w_inh_scale": -1.0,  # inh rows: -U(0, 1)
    "thalamic_sigma_exc": 5.0,  # I = 5 * N(0, 1), new every ms
    "thalamic_sigma_inh": 2.0,
    "v_peak": 30.0,
    "v_init": -65.0,
    "delay": 1.0,  # one step
    "dt": 1.0,
    "duration_ms": 1000.0,
}

BRUNEL = {
    "n_exc": 10000,
    "n_inh": 2500,
    "c_exc": 1000,  # epsilon * N_E
    "c_inh": 250,  # epsilon * N_I
    "j": 0.1,  # mV
    "g": 5.0,
    "eta": 2.0,
    "tau_m": 20.0,
    "theta": 20.0,
    "v_reset": 10.0,
    "v_init": 0.0,
    "t_ref": 2.0,
    "delay": 1.5,
    "dt": 0.1,
    "duration_ms": 1000.0,
}

NETS = {"cuba": CUBA, "cuba40k": CUBA40K, "izhikevich": IZHIKEVICH, "brunel": BRUNEL}

# ---------------------------------------------------------------- end of parameters


def brunel_poisson_rate_hz(p: dict) -> float:
    """Rate of each of the C_E external Poisson inputs of a neuron: eta * nu_thr."""
    nu_thr = p["theta"] / (p["j"] * p["c_exc"] * p["tau_m"])  # per ms
    return 1000.0 * p["eta"] * nu_thr


def spike_stats(times_ms, ids, n: int, duration_ms: float) -> tuple[float, float | None]:
    """Mean rate (Hz) of n neurons and mean CV of ISIs over neurons with >= 3 spikes."""
    import numpy as np

    times_ms = np.asarray(times_ms, dtype=float)
    ids = np.asarray(ids, dtype=np.int64)
    rate = len(times_ms) / n / (duration_ms / 1000.0)
    if len(ids) == 0:
        return rate, None
    order = np.lexsort((times_ms, ids))
    t, i = times_ms[order], ids[order]
    isi = np.diff(t)
    same = i[1:] == i[:-1]
    isi, owner = isi[same], i[1:][same]
    counts = np.bincount(owner, minlength=n)
    ok = counts >= 2
    if not ok.any():
        return rate, None
    s1 = np.bincount(owner, weights=isi, minlength=n)[ok]
    s2 = np.bincount(owner, weights=isi * isi, minlength=n)[ok]
    c = counts[ok]
    mean = s1 / c
    var = np.maximum(s2 / c - mean * mean, 0.0)
    return rate, float(np.mean(np.sqrt(var) / mean))
