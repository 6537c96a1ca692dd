"""Named types: ``af.types.define(name, parent, check)`` and the registry tests can inspect."""

from ._base import NamedType as NamedType
from ._base import define as define
from ._base import get as get
from ._base import registry as registry
from ._base import undefine as undefine

__all__ = ["NamedType", "define", "get", "registry", "undefine"]
