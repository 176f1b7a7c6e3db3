"""python -m benchmarks.peers                          -> which peers import
python -m benchmarks.peers PEER DEVICE NET DURATION_MS -> one run's JSON (DEVICE '-' = default)
python -m benchmarks.peers identical [OPTIONS]         -> one CUBA network, spike for spike, on
                                                          spikelm, Brian2 and NEST (identical.py)
"""

import json
import sys

from . import available_peers, run_peer

if sys.argv[1:2] == ["identical"]:
    from .identical import main

    sys.exit(main(sys.argv[2:]))
if len(sys.argv) == 5:
    dev = None if sys.argv[2] in ("-", "none") else sys.argv[2]
    res = run_peer(sys.argv[1], dev, sys.argv[3], float(sys.argv[4]))
    print(json.dumps(res))
    sys.exit(0 if res is not None else 1)
print(json.dumps({"available": available_peers()}))
