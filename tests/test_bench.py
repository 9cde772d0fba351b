"""bench/run.py still runs: a short ``--quick --json`` run of a few cheap figures gives
samples for the library and the baseline, and ``--render`` prints the table of a saved
result.

Speed is measured in bench/, never asserted here: nothing below looks at a duration or
at a PASS/MISS verdict, which a loaded machine may turn either way. Each run is a
subprocess started from a folder outside the checkout, as a user may run it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "bench" / "run.py"
#: Generous: the figures below take about a second on a loaded 2-core machine.
BENCH_TIMEOUT = 300.0
#: Cheap with --quick: a few hundred servers started, stopped or sent a wrong byte.
CHEAP = ["start_stop", "memory", "failure_short"]


def _bench(*args: str, cwd: Path) -> str:
    """Run ``python bench/run.py ARGS`` in *cwd*; its stdout (the progress goes to stderr)."""
    done = subprocess.run(
        [sys.executable, str(RUN), *args], cwd=cwd, capture_output=True, text=True,
        timeout=BENCH_TIMEOUT, check=False,
    )
    assert done.returncode == 0, f"bench/run.py {' '.join(args)} failed:\n{done.stderr}"
    return done.stdout


def _quick_json(figures: list[str], cwd: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(_bench("--quick", "--json", "--only", *figures, cwd=cwd))
    return result


@pytest.mark.timeout(BENCH_TIMEOUT + 60)
def test_quick_json_run_has_samples_for_library_and_baseline(tmp_path: Path) -> None:
    result = _quick_json(CHEAP, tmp_path)
    assert result["quick"] is True
    assert {"nproc", "cpu", "python", "loadavg", "loadavg_after"} <= set(result["machine"])
    figures = {figure["key"]: figure for figure in result["figures"]}
    assert sorted(figures) == sorted(CHEAP)
    for key, figure in figures.items():
        for side in ("lib", "base"):
            samples = figure[side]
            assert samples, f"{key}: no {side} samples"
            assert all(isinstance(x, (int, float)) for x in samples), f"{key}: {samples!r}"
            assert set(figure[f"{side}_stats"]) == {"median", "p10", "p90"}
        assert isinstance(figure["verdict"], str) and figure["verdict"], key
        assert figure["title"] and figure["target"], key


@pytest.mark.timeout(BENCH_TIMEOUT + 60)
def test_render_prints_the_table_of_a_saved_result(tmp_path: Path) -> None:
    saved = tmp_path / "result.json"
    saved.write_text(json.dumps(_quick_json(["failure_short"], tmp_path)))
    table = _bench("--render", str(saved), cwd=tmp_path)
    assert table.startswith("machine: ")
    assert (
        "| figure | library: median (p10 .. p90) | baseline: median (p10 .. p90) "
        "| library/baseline | target | result |"
    ) in table.splitlines()
    assert any(line.startswith("| wrong bytes arriving") for line in table.splitlines())


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs sched_setaffinity")
@pytest.mark.timeout(BENCH_TIMEOUT + 60)
def test_cpu_option_pins_the_run_to_one_cpu(tmp_path: Path) -> None:
    cpu = max(os.sched_getaffinity(0))
    result = json.loads(
        _bench("--cpu", str(cpu), "--quick", "--json", "--only", "failure_short", cwd=tmp_path)
    )
    assert result["machine"]["cpus_allowed"] == [cpu]
    assert result["machine"]["cpu_pinned"] == cpu


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs sched_setaffinity")
def test_cpu_option_refuses_a_cpu_the_machine_lacks(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(RUN), "--cpu", "100000", "--only", "memory"], cwd=tmp_path,
        capture_output=True, text=True, timeout=BENCH_TIMEOUT, check=False,
    )
    assert done.returncode == 2
    assert "--cpu 100000" in done.stderr
