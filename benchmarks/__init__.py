"""Benchmarks: timings of spikelm against its peers and limits; not part of the test run."""
