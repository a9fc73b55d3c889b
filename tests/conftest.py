"""Shared pytest fixtures: the Faust reference oracle and the diffaust API probe."""

from __future__ import annotations

import pytest

import faustref


def diffaust_compile_or_none():
    """``diffaust.compile`` when the runtime exists, else None (diffaust-side checks skip)."""
    try:
        import diffaust
    except ImportError:  # pragma: no cover
        return None
    fn = getattr(diffaust, "compile", None)
    return fn if callable(fn) else None


def pytest_collection_modifyitems(config, items):
    if faustref.faust_available():
        return
    skip = pytest.mark.skip(reason="the reference oracle needs `faust` (2.54.9), `g++` and Faust's C++ headers")
    for item in items:
        if "reference" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def faust_ref():
    """The ``faustref`` module; skips the test when faust or g++ is missing."""
    if not faustref.faust_available():
        pytest.skip("faust / g++ not installed")
    return faustref


@pytest.fixture(scope="session")
def diffaust_compile():
    """``diffaust.compile``; skips the test while the runtime is not there yet."""
    fn = diffaust_compile_or_none()
    if fn is None:
        pytest.skip("diffaust.compile is not available yet (runtime missing)")
    return fn
