"""Shared test plumbing: make tests/ importable and give engine tests one import point."""

import os
import sys

import pytest

# reference.py and the layer generator in test_differential.py are imported by
# plain module name; put tests/ on sys.path explicitly so that this does not
# depend on pytest's import mode.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def engine():
    """The exact_inj package.  A missing or broken engine is a failure, not a skip:
    a differential test that silently skips has compared nothing."""
    try:
        import exact_inj
        from exact_inj.model import Layer, Network  # noqa: F401

        exact_inj.verify, exact_inj.check  # noqa: B018 - the API under test must exist
    except Exception as exc:  # pragma: no cover - only while the engine is being written
        pytest.fail(f"exact_inj engine is not importable: {exc!r}")
    return exact_inj
