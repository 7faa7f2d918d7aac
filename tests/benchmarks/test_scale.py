"""The scale benchmark runs its quick mode end to end and reports every measure for every size."""

from __future__ import annotations

import json
import math
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "scale.py"


def _load() -> SimpleNamespace:
    return SimpleNamespace(**runpy.run_path(str(BENCHMARK)))


def test_linear_fit_recovers_a_line_and_its_growth():
    bench = _load()
    line = bench.linear_fit([1000, 5000, 16650], [2 + 0.018 * n for n in (1000, 5000, 16650)])
    assert line["a"] == pytest.approx(2) and line["b"] == pytest.approx(0.018)
    assert line["r2"] == pytest.approx(1.0)
    quadratic = bench.linear_fit([1, 10, 100], [1, 100, 10000])
    assert quadratic["loglog_slope"] == pytest.approx(2.0)
    assert bench.with_new_episodes(bench.drama_sizes(105, 50), 3) == [52, 56]


@pytest.mark.slow
def test_quick_mode_reports_every_measure_for_each_size(tmp_path, capsys):
    bench = _load()
    out = tmp_path / "scale.json"
    results = bench.main(["--quick", "--json", str(out), "--work", str(tmp_path / "work")])
    sizes = bench.QUICK["sizes"]
    assert [row["n"] for row in results["sizes"]] == sizes
    for row in results["sizes"]:
        for key, _, _ in bench.MEASURES:
            assert math.isfinite(row[key]) and row[key] >= 0, (row["n"], key)
        assert all(row["checks"].values()), row["checks"]
        assert row["runs"]["refresh"]["work_done"] == 0
    assert set(results["fits"]) == set(bench.FITTED)
    assert all(math.isfinite(fit["b"]) for fit in results["fits"].values())
    assert json.loads(out.read_text())["sizes"][0]["n"] == sizes[0]
    printed = capsys.readouterr().out
    assert "refresh ms/ep" in printed and "log-log slope" in printed


@pytest.mark.slow
def test_quick_mode_runs_the_prefect_flow_against_a_local_server(tmp_path, capsys):
    """--executor prefect: the real build-corpus flow against `prefect server start`, batched; the
    server records every task run the flow reported, and batching keeps them below one per stage
    and episode."""
    bench = _load()
    results = bench.main(["--executor", "prefect", "--quick", "--work", str(tmp_path / "work")])
    sizes = bench.QUICK_PREFECT["sizes"]
    assert [row["n"] for row in results["sizes"]] == sizes and results["task_batch"] == 4
    measures, fitted = bench.measures_of("prefect")
    for row in results["sizes"]:
        for key, _, _ in measures:
            assert math.isfinite(row[key]) and row[key] >= 0, (row["n"], key)
        assert all(row["checks"].values()), row["checks"]
        first = row["runs"]["first"]
        # acquire: one task per episode; the six other stages: batches of up to 4 episodes
        assert row["n"] < first["task_runs"] < row["n"] + 6 * row["n"] / 2
        assert first["events"] > first["task_runs"] and first["http_requests"] > 0
        assert row["runs"]["refresh"]["work_done"] == 0
    assert set(results["fits"]) == set(fitted)
    printed = capsys.readouterr().out
    assert "task runs" in printed and "server CPU s" in printed and "log-log slope" in printed
