"""Performance benchmarks: ``python -m bench [throughput|nodes|memory|llm|full|all]``.

They live in the repository, not in the installed package: run them from a clone's root. Each
prints a table of figures measured on this machine (never asserted in tests);
``bench/README.md`` holds the latest figures and the machine they came from. They use only
pahf's public modules, like any other application.
"""
