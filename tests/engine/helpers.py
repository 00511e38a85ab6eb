"""Helpers shared by the engine tests."""

from __future__ import annotations


def drain(trainer, cancel=None, cancel_at: int | None = None) -> list:
    """Run a trainer to the end; cancel after the StepEvent of step `cancel_at`."""
    from refcfa.engine.events import StepEvent
    from refcfa.engine.trainer import CancelToken

    cancel = cancel or CancelToken()
    events = []
    for event in trainer.run(cancel):
        events.append(event)
        if cancel_at is not None and isinstance(event, StepEvent) and event.step >= cancel_at:
            cancel.cancel()
    return events
