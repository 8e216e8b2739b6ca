"""The memory benchmark's Chroma-server half runs: it starts ``chroma run`` on 127.0.0.1 on a free
port, measures through ``http://`` and stops the server (no timing assertions)."""

from __future__ import annotations

import pytest

from bench import memory_scale


@pytest.mark.slow
@pytest.mark.integration
def test_memory_benchmark_measures_a_chroma_server() -> None:
    report = memory_scale.run("tiny", embedded=[], server=[memory_scale.Scale(3, 5)])
    [table] = [t for t in report.tables if "server" in t.title]
    [row] = table.rows
    assert row[0] == "3 x 5" and row[1] == 15
    assert row[-1] == 0  # no failed searches or adds
    server_rss = row[table.columns.index("server RSS MiB")]
    assert isinstance(server_rss, float) and server_rss > 0
    assert report.figures["server_3_search_warm_p95_ms"] > 0
