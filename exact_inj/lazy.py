"""Lazy package exports (PEP 562), shared by exact_inj/__init__.py and
exact_inj/cli/__init__.py: their public names are imported on first use, so
that the command's entry point (cli/launch.py) can start worker processes
before numpy, python-flint and HiGHS are loaded.  Imports nothing heavy."""

from __future__ import annotations

import importlib

__all__ = ["export"]


def export(package: str, exports: dict[str, str], name: str):
    """The attribute ``name`` of ``package``: ``exports[name]`` names the
    submodule (relative, such as ``"api"``) it comes from; any other name is
    a submodule of the package by that name (``exact_inj.io`` after ``import
    exact_inj``), or AttributeError.  The value is cached on the package.

    >>> export("exact_inj", {"verify": "api"}, "verify").__name__
    'verify'
    >>> export("exact_inj", {}, "no_such_module")
    Traceback (most recent call last):
    AttributeError: module 'exact_inj' has no attribute 'no_such_module'
    """
    module = exports.get(name)
    if module is not None:
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(importlib.import_module(package), name, value)
        return value
    if name.startswith("__"):
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    try:
        return importlib.import_module(f"{package}.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"{package}.{name}":
            raise  # the module exists, but something it imports does not
        raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
