"""Evaluation: benchmarks (published PAHF data, built-in generator), simulated users, the
four-phase protocol, metrics and reports. Imports the graph; nothing imports eval."""
