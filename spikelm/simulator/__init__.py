"""How a network runs: the time loop, the event queue, monitors, SynOp counting, backends."""
from .backends import BACKENDS, get_backend
from .monitors import RateMonitor, SpikeMonitor, StateMonitor
from .queue import EventQueue
from .simulator import RunResult, Simulator

__all__ = ["Simulator", "RunResult", "SpikeMonitor", "StateMonitor", "RateMonitor", "EventQueue", "BACKENDS",
           "get_backend"]
