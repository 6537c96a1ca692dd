"""Named types: ``af.types.define(name, parent, check)`` and the registry tests can inspect."""

from ._named import define as define
from ._named import get as get
from ._named import registry as registry
from ._named import undefine as undefine
from ._typing import NamedType as NamedType

__all__ = ["NamedType", "define", "get", "registry", "undefine"]
