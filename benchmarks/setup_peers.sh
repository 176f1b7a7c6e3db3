#!/usr/bin/env bash
# Install the peer simulators (Brian2, NEST) into their own virtual environment,
# apart from spikelm's. Used by benchmarks/peers/ (run_peer) for side-by-side timings.
#
#   bash benchmarks/setup_peers.sh            # venv at <repo>/.venv-peers
#   SPIKELM_PEERS_VENV=/some/dir bash benchmarks/setup_peers.sh
#   SPIKELM_PEERS_PYTHON=python3.11 ...       # interpreter used to create the venv
#
# Only PyPI is needed. Brian2's cpp_standalone and cython devices need a C++ compiler (g++).
# Re-running is cheap: pip skips what is already installed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
venv="${SPIKELM_PEERS_VENV:-$repo/.venv-peers}"
py="${SPIKELM_PEERS_PYTHON:-python3}"

start=$(date +%s)
if [ ! -x "$venv/bin/python" ]; then
    echo "creating venv $venv with $("$py" --version 2>&1)"
    "$py" -m venv "$venv"
fi
vpy="$venv/bin/python"
"$vpy" -m pip install --quiet --upgrade pip wheel setuptools

status=0
# Brian2 2.9.0 (what pip picks on Python 3.11) does not support numpy >= 2.4.
# cython is what Brian2's runtime "cython" code generation target needs.
if ! "$vpy" -m pip install "brian2" "numpy<2.4" "cython" ; then
    echo "setup_peers: FAILED to install brian2" >&2
    status=1
fi
if ! "$vpy" -m pip install "nest-simulator" "numpy<2.4" ; then
    echo "setup_peers: FAILED to install nest-simulator" >&2
    status=1
fi

# PyNN on top of NEST (pyNN.nest), for benchmarks/pynn.py: the same PyNN script on both
if ! "$vpy" -m pip install "pyNN==0.13.0" "neo>=0.14" "numpy<2.4" ; then
    echo "setup_peers: FAILED to install pyNN" >&2
    status=1
fi

if ! command -v "${CXX:-g++}" >/dev/null 2>&1; then
    echo "setup_peers: WARNING no C++ compiler (g++) found: Brian2 cpp_standalone/cython will not run" >&2
fi

echo "--- checking imports"
PYNEST_QUIET=1 "$vpy" - <<'PY' || status=1
import importlib
ok = True
for mod in ("brian2", "nest", "pyNN.nest"):
    try:
        m = importlib.import_module(mod)
        v = getattr(m, "__version__", None)
        if v is None and mod == "nest":
            v = m.__version__ if hasattr(m, "__version__") else m.GetKernelStatus().get("build_info", {}).get("version", "?")
        print(f"{mod}: {v}")
    except Exception as e:  # noqa: BLE001
        ok = False
        print(f"{mod}: NOT importable: {type(e).__name__}: {e}")
raise SystemExit(0 if ok else 1)
PY

end=$(date +%s)
echo "setup_peers: venv $venv, $(du -sh "$venv" | cut -f1), $((end - start)) s, status $status"
exit $status
