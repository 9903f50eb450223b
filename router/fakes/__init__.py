"""Fakes that ship with the code: real servers for tests and benchmarks, never paid providers."""
