"""Fixtures for server tests: an in-process server on a free loopback port."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import pytest
from server_helpers import Running, serve_app


@pytest.fixture
def serve() -> Callable[..., AbstractAsyncContextManager[Running]]:
    """``async with serve(app, **options) as running:`` runs a server for the block."""
    return serve_app
