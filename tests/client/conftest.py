"""The app served by a real uvicorn on a free port (in a thread), for the client's live tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from dbsize.config import Settings
from dbsize.logging import configure_logging
from dbsize.main import create_app
from tests.jobs.conftest import _drop_injected_faults, _empty_queue, worker
from tests.statistics.conftest import fleet

__all__ = ["_drop_injected_faults", "_empty_queue", "fleet", "worker"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def live_url(settings: Settings) -> Iterator[str]:
    # As `dbsize serve` does: the server's event lines go to stderr. Unconfigured, structlog
    # prints to stdout, which this in-process server shares with the CLI's --json output.
    configure_logging("console", "INFO")
    port = _free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_config=None, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "uvicorn did not start"
        assert time.monotonic() < deadline, "uvicorn did not start within 20 s"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(20)
