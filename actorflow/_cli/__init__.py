"""The cli layer: the command line.

This ``__init__`` is the folder's door: the rest of the package imports what lies here only
through it, and it names exactly that (tests/test_layers.py checks both).
"""

from ._cli import main as main

__all__ = [
    "main",
]
