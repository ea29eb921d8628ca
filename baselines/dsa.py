"""Registers ``dsa``: DC's gradient matching with siamese DSA and real initialisation (``main.py --method DSA``).

The implementation is :mod:`ddbench_baselines.dc`'s, shared with ``dc``; only the defaults differ.
"""

from __future__ import annotations

from collections.abc import Callable

from ddbench import Distiller, hookimpl

from .dc import DSA


@hookimpl
def ddbench_register_methods(register: Callable[[type[Distiller]], None]) -> None:
    register(DSA)
