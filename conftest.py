"""Root test configuration: every async test runs on asyncio and on trio."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuzz-long",
        metavar="MINUTES",
        default=None,
        help="run the HTTP/1.x parser differential fuzzing for MINUTES "
        "(packages/pagi-server/tests/test_server_parser_fuzz.py; env PAGI_FUZZ_MINUTES)",
    )
    parser.addoption(
        "--install-check",
        action="store_true",
        default=False,
        help="build the wheels, pip-install them into a fresh venv and serve hello "
        "(examples/hello/test_hello_from_wheels.py; needs the package index, ~20 s)",
    )
