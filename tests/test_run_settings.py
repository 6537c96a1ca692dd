"""Run settings are one frozen value, checked whole before any store or file is touched."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

import actorflow as af
from actorflow._run._run_settings import RunSettings


def small_flow() -> af.Flow:
    flow = af.Flow("settings")

    @flow.source
    def numbers(n: int = 5) -> Iterator[int]:
        yield from range(n)

    @flow.collector(init=0)
    def total(acc: int, numbers: int) -> int:
        return acc + numbers

    return flow


BAD: list[tuple[str, Any, str]] = [
    ("checkpoint_every", -1, "checkpoint_every must be None or a positive, finite number of seconds, got -1"),
    ("checkpoint_every", 0, "checkpoint_every must be None or a positive, finite number of seconds, got 0"),
    ("checkpoint_every", math.nan, "checkpoint_every must be None or a positive, finite number of seconds, got nan"),
    ("checkpoint_every", math.inf, "got inf"),
    ("checkpoint_every", "2", "got '2'"),
    ("checkpoint_every", True, "got True"),
    ("batch_time", -1, "batch_time must be a positive, finite number of seconds, got -1"),
    ("batch_time", math.nan, "batch_time must be a positive, finite number of seconds, got nan"),
    ("batch_time", None, "batch_time must be a positive, finite number of seconds, got None"),
    ("slow_item", 0, "slow_item must be a positive, finite number of seconds, got 0"),
    ("slow_item", math.inf, "slow_item must be a positive, finite number of seconds, got inf"),
    ("executors", ["numbers"], "executors must be None or a mapping of task names to executors, got list"),
    ("secrets", {"token": 5}, "secrets must map names to string values; not strings: 'token': int"),
    ("secrets", "token", "secrets must map secret names to string values, got str"),
    ("meta", [1], "meta must be None or a mapping of facts to record, got list"),
    ("cache", 3, "cache must be None, True, False, a directory, a Store or a Cache, got int"),
    ("cache_limit", 0, "cache_limit: the cache limit must be a positive number of bytes (or None), got 0"),
    ("cache_limit", 1.5, "cache_limit: the cache limit must be a positive number of bytes (or None), got 1.5"),
    ("handle_signals", "yes", "handle_signals must be True or False, got 'yes'"),
    ("allow_changed", 1, "allow_changed must be True or False, got 1"),
    ("from_previous", None, "from_previous must be True or False, got None"),
    ("resume", "yes", "resume must be True, False or 'auto', got 'yes'"),
]


@pytest.mark.parametrize(("name", "value", "message"), BAD, ids=[f"{n}={v!r}" for n, v, _ in BAD])
def test_a_bad_setting_is_refused_before_the_store_is_created(
    tmp_path: Path, name: str, value: Any, message: str
) -> None:
    store = tmp_path / "store"
    with pytest.raises(af.ActorflowError, match=None) as info:
        af.run(small_flow(), store=store, **{name: value})
    assert message in str(info.value)
    assert not store.exists(), f"{name}={value!r}: the store directory was created before the refusal"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("name", "value", "message"), BAD[:3], ids=["-1", "0", "nan"])
async def test_open_run_refuses_before_the_store_too(tmp_path: Path, name: str, value: Any, message: str) -> None:
    store = tmp_path / "store"
    with pytest.raises(af.ActorflowError, match="checkpoint_every"):
        async with af.open_run(small_flow(), store=store, **{name: value}):
            raise AssertionError("the run must not start")
    assert not store.exists()


def test_no_spill_area_is_made_for_a_refused_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    tempfile.tempdir = None  # read TMPDIR again
    try:
        with pytest.raises(af.ActorflowError):
            af.run(small_flow(), checkpoint_every=0, store=tmp_path / "s")
    finally:
        tempfile.tempdir = None
    assert os.listdir(tmp_path) == []


def test_an_unknown_setting_is_a_type_error_naming_it() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'checkpoint_evry'"):
        af.run(small_flow(), checkpoint_evry=1.0)  # type: ignore[call-arg]


def test_resume_without_a_store_is_refused() -> None:
    with pytest.raises(af.ActorflowError, match="resume=True needs store=PATH"):
        af.run(small_flow(), resume=True)


def test_settings_are_one_frozen_value() -> None:
    settings = RunSettings.of("run", {"checkpoint_every": 1, "batch_time": 0.5})
    assert settings.checkpoint_every == 1.0 and settings.batch_time == 0.5 and settings.store is None
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        settings.batch_time = 2.0  # type: ignore[misc]
    assert RunSettings.of("run", {}) == RunSettings()


def test_good_settings_run(tmp_path: Path) -> None:
    result = af.run(small_flow(), store=tmp_path / "s", checkpoint_every=None, batch_time=0.02, slow_item=5)
    assert result["total"] == 10
