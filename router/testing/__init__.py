"""Fakes that ship with the code: real servers for tests and benchmarks, never paid providers
(shipped on purpose, like `starlette.testclient`; no service module imports them)."""
