"""The per-model CUDA code of the cupy backend: each neuron model's update and may-fire.

The skeleton in :mod:`spikelm.gpu.kernels` owns the loop over neurons and the fire flag;
each model supplies only these snippets, written expression by expression as its numba
twin in ``spikelm/simulator/numba_kernels.py`` (:data:`MIRRORS` lists the shared
expressions; tests/test_gpu.py checks both sides contain them).
"""
from __future__ import annotations

# -- per-model code ---------------------------------------------------------------------------
# In the snippets: ST(r, i) is state row r of neuron i; qe/qi the input slot of this step;
# iext the external current; c the population's constants; t the step; key its random
# stream. An update sets `out` (+1 / -1 / 0) and clears qe[i], qi[i] as numba's does.

_LIF_UPDATE = """
        const real e_l = c[0], v_th = c[1], v_reset = c[2], em = c[3], pe = c[4], pi = c[5];
        const real de = c[6], di = c[7], ref_steps = c[8], ext = c[9], delta_e = c[10], delta_i = c[11];
        const real alpha = c[12], da = c[13];
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
        if (c[14] != 0.0) {  /* adaptation or a rule moves the threshold offset row `a` */
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
        if (c[0] >= c[1]) may = true;
        else if (ST(3, i) > 0 || fabs(ST(1, i)) + fabs(ST(2, i)) > 1e-9 || ST(0, i) >= c[1]) may = true;
"""

_EIIF_UPDATE = """
        const real tl = c[0] + ((real)t - c[1]);
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
        const real tl = c[0] + ((real)(t + 1) - c[1]);
        may = fabs(ST(0, i)) >= ST(1, i) + ST(2, i) * tl;
"""

_IZH_UPDATE = """
        const real dt = c[0], v_peak = c[1], de = c[2], di = c[3];
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
        const real q_min = c[0], q_max = c[1];
        ST(0, i) += qe[i] + qi[i] + iext[i];
        qe[i] = 0.0;
        qi[i] = 0.0;
        const real d = ST(0, i) - ST(1, i);
        if (d >= 0.5 && ST(1, i) < q_max) { ST(1, i) += 1.0; out = 1; }
        else if (d < -0.5 && ST(1, i) > q_min) { ST(1, i) -= 1.0; out = -1; }
"""

_SIF_MAY_FIRE = """
        const real d = ST(0, i) - ST(1, i);
        may = (d >= 0.5 && ST(1, i) < c[1]) || (d < -0.5 && ST(1, i) > c[0]);
"""

_POISSON_UPDATE = """
        if (uniform01(key, t, i - lo) < c[0]) out = 1;
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
    "poisson": {"update": _POISSON_UPDATE, "may_fire": "        may = c[0] > 0.0;\n", "static_busy": None},
    "spike_times": {"update": "", "may_fire": "        may = false;\n", "static_busy": False},
}

#: Expressions each CUDA kernel shares with its numba twin in numba_kernels.py, update and
#: may-fire: a string is the same text once ``ST(r, i)`` reads ``S[r, i]``, ``&&`` ``and``, ``||``
#: ``or`` and ``fabs(`` ``abs(``; a pair is (CUDA text, numba text). tests/test_gpu.py checks both
#: sources contain them, so an edit to one side that changes an operation fails a test on CI.
MIRRORS = {
    "lif": ("e_l + (ST(0, i) - e_l) * em + ie * pe + ii * pi + iext[i] * ext", "v >= v_th + a", "ie * de",
            "ii * di", ("ST(3, i) > 0 || fabs(ST(1, i)) + fabs(ST(2, i)) > 1e-9 || ST(0, i) >= c[1])",
                        "S[3, i] > 0 or abs(S[1, i]) + abs(S[2, i]) > 1e-9 or S[0, i] >= c[1]:")),
    "eiif": ("ST(0, i) + (qe[i] + qi[i] + iext[i])", "ST(1, i) + ST(2, i) * tl", "1.0 - ST(3, i)",
             "fabs(ST(0, i)) >= ST(1, i) + ST(2, i) * tl", ("c[0] + ((real)(t + 1) - c[1])", "c[0] + (t + 1 - c[1])"),
             ("c[0] + ((real)t - c[1])", "c[0] + (t - c[1])")),
    "izhikevich": ("h * (0.04 * v * v + 5.0 * v + 140.0 - u + cur)", "dt * (ST(4, i) * (ST(5, i) * v - u))",
                   "ie + ii + iext[i]"),
    "signed_if": ("ST(0, i) - ST(1, i)", "d >= 0.5 && ST(1, i) < q_max", "d < -0.5 && ST(1, i) > q_min",
                  "(d >= 0.5 && ST(1, i) < c[1]) || (d < -0.5 && ST(1, i) > c[0])"),
}
