"""The per-model CUDA code of the cupy backend: each neuron model's update and may-fire.

The skeleton in :mod:`spikelm.gpu.kernels` owns the loop over neurons and the fire flag;
each model supplies only these snippets, written expression by expression as its numba
twin in ``spikelm/simulator/kernels/<model>.py`` (:data:`MIRRORS` lists the shared
expressions; tests/test_gpu.py checks both sides contain them). Constants are read by the
names the model file declares (``CONSTS``): :func:`consts_prologue` declares them.
"""
from __future__ import annotations

from spikelm.network.models import get_model


def consts_prologue(model):
    """``const real <name> = c[<k>];`` for each constant of ``model``, in its CONSTS order."""
    return "".join(f"    const real {name} = c[{k}]; (void){name};\n"
                   for k, name in enumerate(get_model(model).consts))

# -- per-model code ---------------------------------------------------------------------------
# In the snippets: ST(r, i) is state row r of neuron i; qe/qi the input slot of this step;
# iext the external current; t the step; key its random stream; each of the model's
# constants by its name (the skeleton declares `const real <name> = c[<index>];` for every
# name of the model's CONSTS, so no snippet indexes c). An update sets `out` (+1 / -1 / 0)
# and clears qe[i], qi[i] as numba's does.

_LIF_UPDATE = """
        const bool exp_e = delta_e == 0.0;
        const bool exp_i = delta_i == 0.0;
        real ie = ST(1, i);
        real ii = ST(2, i);
        const real ye = qe[i];
        const real yi = qi[i];
        qe[i] = 0.0;
        qi[i] = 0.0;
        if (exp_e) ie += ye;
        if (exp_i) ii += yi;
        real ref = ST(3, i);
        const bool free_ = ref <= 0.0;
        real vn = e_l + (ST(0, i) - e_l) * em + ie * pe + ii * pi + iext[i] * ext;
        if (!exp_e) vn = vn + ye;
        if (!exp_i) vn = vn + yi;
        const real v = free_ ? vn : v_reset;
        ref = free_ ? ref : ref - 1.0;
        bool spk;
        if (uses_a != 0.0) {  /* adaptation or a rule moves the threshold offset row `a` */
            const real a = ST(4, i) * da;
            spk = free_ && (v >= v_th + a);
            ST(4, i) = spk ? a + alpha : a;
        } else {
            spk = free_ && (v >= v_th);
        }
        ST(0, i) = spk ? v_reset : v;
        ST(1, i) = ie * de;
        ST(2, i) = ii * di;
        ST(3, i) = spk ? ref_steps : ref;
        out = spk ? 1 : 0;
"""

_LIF_MAY_FIRE = """
        /* resting at or above threshold; refractory; input current left; V at or above v_th (an
           adapted threshold v_th + a decays back to v_th) */
        if (e_l >= v_th) may = true;
        else if (ST(3, i) > 0 || fabs(ST(1, i)) + fabs(ST(2, i)) > 1e-9 || ST(0, i) >= v_th) may = true;
"""

_EIIF_UPDATE = """
        const real tl = t0 + ((real)t - window_start);
        real v = ST(0, i) + (qe[i] + qi[i] + iext[i]);
        qe[i] = 0.0;
        qi[i] = 0.0;
        const real theta = ST(1, i) + ST(2, i) * tl;
        if (v >= theta) out = 1;
        else if (v <= -theta) out = -1;
        const real keep = 1.0 - ST(3, i);
        if (v > 0) { const real y = v * keep; v = y > 0.0 ? y : 0.0; }      /* max(0.0, y) */
        else if (v < 0) { const real y = v * keep; v = y < 0.0 ? y : 0.0; } /* min(0.0, y) */
        ST(0, i) = v;
"""

_EIIF_MAY_FIRE = """
        const real tl = t0 + ((real)(t + 1) - window_start);
        may = fabs(ST(0, i)) >= ST(1, i) + ST(2, i) * tl;
"""

_IZH_UPDATE = """
        const real h = 0.5 * dt;
        const real ie = ST(2, i) + qe[i];
        const real ii = ST(3, i) + qi[i];
        qe[i] = 0.0;
        qi[i] = 0.0;
        const real cur = ie + ii + iext[i];
        real v = ST(0, i);
        real u = ST(1, i);
        v += h * (0.04 * v * v + 5.0 * v + 140.0 - u + cur);
        v += h * (0.04 * v * v + 5.0 * v + 140.0 - u + cur);
        u += dt * (ST(4, i) * (ST(5, i) * v - u));
        ST(2, i) = ie * de;
        ST(3, i) = ii * di;
        const bool spk = v >= v_peak;
        ST(0, i) = spk ? ST(6, i) : v;
        ST(1, i) = spk ? u + ST(7, i) : u;
        out = spk ? 1 : 0;
"""

_SIF_UPDATE = """
        ST(0, i) += qe[i] + qi[i] + iext[i];
        qe[i] = 0.0;
        qi[i] = 0.0;
        const real d = ST(0, i) - ST(1, i);
        if (d >= 0.5 && ST(1, i) < q_max) { ST(1, i) += 1.0; out = 1; }
        else if (d < -0.5 && ST(1, i) > q_min) { ST(1, i) -= 1.0; out = -1; }
"""

_SIF_MAY_FIRE = """
        const real d = ST(0, i) - ST(1, i);
        may = (d >= 0.5 && ST(1, i) < q_max) || (d < -0.5 && ST(1, i) > q_min);
"""

_POISSON_UPDATE = """
        if (uniform01(key, t, i - lo) < prob) out = 1;
"""

#: Per-model code: ``update`` (the model's step for neuron i) and ``may_fire`` (whether it
#: can still fire without input). ``spike_times`` has no per-neuron update: the skeleton
#: clears its flags and ``spike_times_fire`` (common) sets those of this step's entries.
#: ``static_busy``: the model may always fire (the host then never looks for quiescence).
MODEL_SOURCES = {
    "lif": {"update": _LIF_UPDATE, "may_fire": _LIF_MAY_FIRE, "static_busy": False},
    "eiif": {"update": _EIIF_UPDATE, "may_fire": _EIIF_MAY_FIRE, "static_busy": False},
    "izhikevich": {"update": _IZH_UPDATE, "may_fire": "        may = true;\n", "static_busy": True},
    "signed_if": {"update": _SIF_UPDATE, "may_fire": _SIF_MAY_FIRE, "static_busy": False},
    "poisson": {"update": _POISSON_UPDATE, "may_fire": "        may = prob > 0.0;\n", "static_busy": None},
    "spike_times": {"update": "", "may_fire": "        may = false;\n", "static_busy": False},
}

#: Expressions each CUDA kernel shares with its numba twin in spikelm/simulator/kernels/<model>.py, update and
#: may-fire: a string is the same text once ``ST(r, i)`` reads ``S[r, i]``, ``&&`` ``and``, ``||``
#: ``or`` and ``fabs(`` ``abs(``; a pair is (CUDA text, numba text). tests/test_gpu.py checks both
#: sources contain them, so an edit to one side that changes an operation fails a test on CI.
MIRRORS = {
    "lif": ("e_l + (ST(0, i) - e_l) * em + ie * pe + ii * pi + iext[i] * ext", "v >= v_th + a", "ie * de",
            "ii * di", ("ST(3, i) > 0 || fabs(ST(1, i)) + fabs(ST(2, i)) > 1e-9 || ST(0, i) >= v_th)",
                        "S[3, i] > 0 or abs(S[1, i]) + abs(S[2, i]) > 1e-9 or S[0, i] >= v_th:")),
    "eiif": ("ST(0, i) + (qe[i] + qi[i] + iext[i])", "ST(1, i) + ST(2, i) * tl", "1.0 - ST(3, i)",
             "fabs(ST(0, i)) >= ST(1, i) + ST(2, i) * tl",
             ("t0 + ((real)(t + 1) - window_start)", "c[C.t0] + (t + 1 - c[C.window_start])"),
             ("t0 + ((real)t - window_start)", "c[C.t0] + (t - c[C.window_start])")),
    "izhikevich": ("h * (0.04 * v * v + 5.0 * v + 140.0 - u + cur)", "dt * (ST(4, i) * (ST(5, i) * v - u))",
                   "ie + ii + iext[i]"),
    "signed_if": ("ST(0, i) - ST(1, i)", "d >= 0.5 && ST(1, i) < q_max", "d < -0.5 && ST(1, i) > q_min",
                  "(d >= 0.5 && ST(1, i) < q_max) || (d < -0.5 && ST(1, i) > q_min)"),
}
