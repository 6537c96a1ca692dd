"""Command-line option values: ``--set``, ``--executor``, ``--secret``, ``--config`` files, and how
they layer (the CLI's parsing helpers; ``_cli`` builds the commands on them)."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

from .._base import ActorflowError
from .._define import EXECUTOR_NAMES


class UsageError(ActorflowError):
    """Bad command-line usage: exit code 2."""


def parse_sets(values: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``task.option=value`` strings as nested options (values stay text; binding structures them)."""
    out: dict[str, dict[str, Any]] = {}
    for text in values:
        key, eq, value = text.partition("=")
        task, dot, option = key.strip().partition(".")
        if not eq or not dot or not task or not option:
            raise UsageError(f"--set expects TASK.OPTION=VALUE, got {text!r}")
        if value[:1] in "[{":
            try:
                out.setdefault(task, {})[option] = json.loads(value)
                continue
            except json.JSONDecodeError:
                pass
        out.setdefault(task, {})[option] = value
    return out


def parse_executors(values: Sequence[str]) -> dict[str, str]:
    """``--executor TASK=NAME`` pairs (names are checked when the run starts, before anything runs)."""
    out: dict[str, str] = {}
    for text in values:
        task, eq, name = (part.strip() for part in text.partition("="))
        if not eq or not task or not name:
            raise UsageError(f"--executor expects TASK=NAME (NAME one of {', '.join(EXECUTOR_NAMES)}), got {text!r}")
        out[task] = name
    return out


def parse_secrets(values: Sequence[str]) -> dict[str, str]:
    """``NAME=ENV_VAR`` pairs: each secret's value is read from the environment variable."""
    out: dict[str, str] = {}
    for text in values:
        name, eq, var = text.partition("=")
        if not eq or not name.strip() or not var.strip():
            raise UsageError(f"--secret expects NAME=ENV_VAR, got {text!r}")
        if var.strip() not in os.environ:
            raise UsageError(f"--secret {name.strip()}: environment variable {var.strip()!r} is not set")
        out[name.strip()] = os.environ[var.strip()]
    return out


def load_config(path: str) -> dict[str, dict[str, Any]]:
    """Options from a TOML file: one table per task."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise UsageError(f"config file {path!r} not found") from None
    except OSError as exc:
        raise UsageError(f"config file {path!r} cannot be read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config file {path!r} is not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"config file {path!r} is not UTF-8 text, which TOML must be (byte {exc.start}: {exc.reason})"
        ) from None
    bad = [k for k, v in data.items() if not isinstance(v, dict)]
    if bad:
        raise UsageError(f"config file {path!r}: expected one [table] per task, but {bad} are not tables")
    return data


def merge_options(*layers: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for task, values in layer.items():
            out.setdefault(task, {}).update(values)
    return out


# -- output ----------------------------------------------------------------------------------------
