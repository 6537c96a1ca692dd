"""Optional dependencies: which extra installs what, and one clear error when it is missing.

Heavy stacks are extras of the ``actorflow`` distribution (``pip install 'actorflow[dask]'``) and
are imported only where a feature uses them. A feature asks for its package here, by module name:
:func:`require` checks that it is installed without importing it (to refuse early, when the
feature is set up), :func:`load` imports it. Either raises :class:`MissingExtraError`, naming the
extra to install, when the package is not there.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from ._errors import ActorflowError

#: The extra that installs each optional module actorflow imports.
EXTRAS: dict[str, str] = {
    "distributed": "dask",
    "watchfiles": "watch",
    "anyio": "watch",
    "psycopg": "postgres",
}


class MissingExtraError(ActorflowError, ImportError):
    """A feature needs a package of an extra that is not installed; the message names the extra.

    Also an :class:`ImportError`.

    Attributes:
        module: the module that could not be imported.
        extra: the extra that installs it (``pip install 'actorflow[EXTRA]'``).
    """

    def __init__(self, module: str, extra: str, feature: str) -> None:
        super().__init__(
            f"{feature} needs the {module!r} package, which is not installed: pip install 'actorflow[{extra}]'"
        )
        self.module = module
        self.extra = extra


def _extra(module: str) -> str:
    top = module.partition(".")[0]
    try:
        return EXTRAS[top]
    except KeyError:
        raise KeyError(f"{top!r} is not an optional dependency of actorflow; known: {sorted(EXTRAS)}") from None


def require(module: str, feature: str) -> None:
    """Refuse at once when *module* (an optional dependency) is not installed; imports nothing.

    Raises:
        MissingExtraError: it is not installed.
    """
    extra = _extra(module)
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise MissingExtraError(module, extra, feature)


def load(module: str, feature: str) -> ModuleType:
    """Import *module* (an optional dependency) for *feature*.

    Raises:
        MissingExtraError: it is not installed.
    """
    extra = _extra(module)
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module.partition(".")[0] != exc.name.partition(".")[0]:
            raise  # the package is there but one of its own dependencies is missing: show that as it is
        raise MissingExtraError(module, extra, feature) from exc
