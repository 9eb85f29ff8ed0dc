"""Entry points and process wiring: signals, probes, metrics."""
