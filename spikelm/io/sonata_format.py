"""Constants of spikelm's SONATA spike files, shared by the writer and the readers."""

from __future__ import annotations

import h5py
import numpy as np

SORTING = {"none": 0, "by_id": 1, "by_time": 2}
SORTING_DTYPE = h5py.enum_dtype(SORTING, basetype=np.uint8)
# bmtk writes the sorting attribute as a string and also knows these short forms.
_SORTING_STRINGS = {"none": "none", "unknown": "none", "by_id": "by_id", "id": "by_id",
                    "by_time": "by_time", "time": "by_time"}
SONATA_MAGIC = 0x0A7A
SONATA_VERSION = (0, 1)
FORMAT = "spikelm-sonata/1"
# HDF5 file format bounds of run files: SWMR (readable while written, consistent after a
# crash) needs the 1.10 format; capping it there keeps files readable by HDF5 1.10 and later
# (libsonata, bmtk, HDFView).
LIBVER = ("v110", "v110")
# Metadata keys the writer sets itself; read_metadata returns them too.
INTERNAL_KEYS = ("dt", "version", "populations", "signed", "complete", "format", "time_unit")
_SHORT_STR = 4096          # longer strings go to a dataset (HDF5 attributes are capped at 64 KiB)
_RESERVED_VARIABLES = {"data", "mapping", "weights", "steps", "times"}
# time units a reader accepts -> factor to ms; "step" (converted LMs) has no duration and
# stays in steps
_TIME_UNITS = {"ms": 1.0, "s": 1000.0, "sec": 1000.0, "step": 1.0}


def _py(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, np.generic):
        return value.item()
    return value
