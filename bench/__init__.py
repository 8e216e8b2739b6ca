"""Performance benchmarks: ``pahf bench [throughput|nodes|memory|llm|full|all]``.

Each benchmark prints a table of figures measured on this machine (never asserted in tests);
``bench/README.md`` holds the latest figures and the machine they came from.
"""
