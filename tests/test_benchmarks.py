"""Every benchmark runs (in its smallest form) and prints its JSON figures last, with the keys the
issues name. Speed is never asserted here: the figures live in the benchmarks' own output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def last_json(script: str, *args: str) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert isinstance(figures, dict)
    return figures


def test_throughput_benchmark_keys() -> None:
    figures = last_json("throughput.py", "--items", "2000")
    assert {
        "items", "actorflow_items_per_s", "actorflow_async_items_per_s", "trio_naive_items_per_s",
        "trio_tuned_items_per_s", "plain_loop_items_per_s", "ratio_vs_trio_tuned", "ratio_vs_plain_loop", "peak_rss_mb",
        "container_items_per_s", "container_unchecked_items_per_s", "container_trio_tuned_items_per_s",
        "container_ratio_vs_trio_tuned", "container_check_cost",
    } <= set(figures)
    assert figures["items"] == 2000


def test_checkpoint_benchmark_keys() -> None:
    figures = last_json("checkpoint.py", "--quick")
    assert {
        "ratio_checkpointed_vs_plain", "checkpoint_100k_seconds", "resume_100k_seconds", "max_checkpoint_gap_s",
        "interrupt_latency_s", "transactional_sink_ratio",
    } <= set(figures)


def test_latency_benchmark_keys() -> None:
    figures = last_json("latency.py", "--quick")
    assert {"p50_ratio_vs_trio", "p99_ratio_vs_trio", "first_item_s"} <= set(figures)


def test_cache_benchmark_keys() -> None:
    figures = last_json("cache.py", "--quick")
    assert {"concat_speedup", "warm_vs_cold_ratio"} <= set(figures)
    assert figures["concat_parts"] == 200


def test_scale_benchmark_keys() -> None:
    figures = last_json("scale.py", "--quick")
    assert {"inline_items_per_s", "process_items_per_s", "dask_items_per_s", "process_speedup", "dask_speedup"} <= set(
        figures
    )


def test_zip_stall_benchmark_keys() -> None:
    figures = last_json("zip_stall.py", "--quick")
    assert {"small_vs_default_ratio", "small_vs_default_plain_ratio", "small_checkpoint_5ms_s"} <= set(figures)
    assert figures["items"] == 2000


def test_signals_benchmark_keys() -> None:
    figures = last_json("signals.py", "--quick", "--delay", "0.6")
    assert {"max_overshoot_s", "inline_second_sigint_s", "inline_store_SIGTERM_exit_code"} <= set(figures)
    assert figures["inline_store_SIGTERM_exit_code"] == 143 and figures["inline_no_store_SIGINT_exit_code"] == 130


def test_windows_benchmark_keys() -> None:
    figures = last_json("windows.py", "--quick")
    assert {
        "window_events_per_s", "plain_window_events_per_s", "window_ratio_vs_plain_loop", "keyed_events_per_s",
        "plain_keyed_events_per_s", "keyed_ratio_vs_plain_loop", "peak_rss_mb",
    } <= set(figures)
    assert figures["events"] == 20_000 and figures["windows"] == 2_000


def test_connectors_benchmark_keys() -> None:
    figures = last_json("connectors.py", "--quick")
    assert {"postgres_sink_ratio", "jsonl_source_ratio", "postgres_rows", "jsonl_mb"} <= set(figures)
    assert figures["postgres_rows"] == 20_000
