"""The public face: everything in __all__ is exported and documented; nothing private leaks."""

from __future__ import annotations

import inspect

import actorflow as af


def test_all_names_exist_and_have_docstrings() -> None:
    assert sorted(af.__all__) == sorted(set(af.__all__))
    for name in af.__all__:
        obj = getattr(af, name)
        if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismodule(obj):
            assert inspect.getdoc(obj), f"af.{name} has no docstring"


def test_public_names_are_not_private() -> None:
    assert all(not n.startswith("_") for n in af.__all__)


def test_events_module_exports() -> None:
    for name in af.events.__all__:
        assert inspect.getdoc(getattr(af.events, name)), name


def test_package_ships_type_information() -> None:
    from pathlib import Path

    assert (Path(af.__file__).parent / "py.typed").exists()
