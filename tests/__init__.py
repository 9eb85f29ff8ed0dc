"""kvip's test suite; a package so that `tests.lab` is importable from the repo root."""
