"""The GPU check runs every part in its quick mode on the CPU and reports a finite figure for each."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_quick_mode_reports_every_part(tmp_path, capsys):
    bench = _load()
    out = tmp_path / "gpu.json"
    results = bench.main(["--quick", "--device", "cpu", "--json", str(out)])
    rows = results["rows"]
    errors = [f"{r['part']} ({r['setting']}): {r['error']}" for r in rows if r["error"]]
    assert not errors, errors
    assert {r["part"] for r in rows} == set(bench.PARTS)
    for row in rows:
        assert math.isfinite(row["figure"]) and row["figure"] > 0, row
    train = {r["setting"].split(",")[0] for r in rows if r["part"] == "train"}
    assert train == {"fp32", "bf16 autocast"}
    assert next(r for r in rows if r["part"] == "ddp")["setting"].startswith("gloo world 1")
    assert {r["unit"] for r in rows if r["part"] not in ("train", "ddp")} == {"RTF"}
    # one markdown table, with the device and torch version above it
    printed = capsys.readouterr().out
    assert "| part | setting | figure | unit |" in printed
    assert f"torch {results['torch']}" in printed and results["device_name"] in printed
    assert all(f"| {r['part']} | {r['setting']} |" in printed for r in rows)
    assert json.loads(out.read_text()) == results


def test_a_failing_part_is_one_row_and_the_rest_runs(monkeypatch):
    bench = _load()
    real = bench.model_dir

    def demucs_breaks(name, *args, **kwargs):
        if name == "demucs":
            raise RuntimeError("CUDA out of memory.\nTried to allocate 2 GiB")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(bench, "model_dir", demucs_breaks)
    results = bench.run(quick=True, device="cpu", seconds=5.0, parts=("demucs", "campplus"))
    demucs, campplus = results["rows"]
    assert demucs["figure"] is None
    assert demucs["error"] == "RuntimeError: CUDA out of memory. Tried to allocate 2 GiB"
    assert campplus["error"] is None and campplus["figure"] > 0
    lines = bench.table(results).splitlines()
    assert (
        "| demucs | HTDemucs tiny, 44.1 kHz stereo, 60 s chunks | error: RuntimeError: CUDA"
        in lines[-2]
    )
