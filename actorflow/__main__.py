"""``python -m actorflow``: the command line (see :mod:`actorflow._cli._cli`)."""

from __future__ import annotations

import sys


def main() -> int:
    """Run the ``actorflow`` command line with ``sys.argv``."""
    from ._cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
