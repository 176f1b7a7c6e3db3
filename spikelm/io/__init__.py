"""Files in and out.

The SONATA spike/state file API (``spikelm.io.sonata``) is re-exported here. ``plots`` draws
those files with matplotlib and is not imported here; use ``from spikelm.io import plots``.
Scenario files are read by ``spikelm.io.scenario``, checkpoints by ``spikelm.io.checkpoint``.
"""

from spikelm.io.sonata import *  # noqa: F403
from spikelm.io.sonata import __all__  # noqa: F401
