"""Collection job tests share the job tests' real arq worker and queue hygiene."""

from __future__ import annotations

from tests.jobs.conftest import _drop_injected_faults, _empty_queue, _structured_logs, worker

__all__ = ["_drop_injected_faults", "_empty_queue", "_structured_logs", "worker"]
