"""Generator workers and the latest-request-wins loader thread."""

from __future__ import annotations

import threading
import time

import pytest

from refcfa_gui.workers.generator_worker import GeneratorWorker, WorkerManager
from refcfa_gui.workers.latest import LatestRequestThread

pytestmark = pytest.mark.gui


def test_generator_worker_yields_then_finishes(qtbot):
    manager = WorkerManager()
    got = []
    worker = GeneratorWorker(lambda n: (i * i for i in range(n)), 4, name="squares")
    worker.yielded.connect(got.append)
    with qtbot.waitSignal(worker.finished, timeout=5000):
        manager.start(worker, visible=True)
    assert got == [0, 1, 4, 9]
    assert manager.job_names() == [] and manager.shutdown(1)


def test_generator_worker_abort_closes_the_generator(qtbot):
    manager = WorkerManager()
    closed = threading.Event()
    release = threading.Event()
    running = threading.Event()

    def endless():
        running.set()
        try:
            i = 0
            while True:
                release.wait(5)
                yield i
                i += 1
        finally:
            closed.set()

    worker = GeneratorWorker(endless, name="endless")
    aborted = []
    worker.aborted.connect(lambda: aborted.append(True))
    manager.start(worker, visible=True)
    assert manager.job_names() == ["endless"]
    assert running.wait(5)
    worker.quit()
    release.set()
    assert worker.wait(5)
    qtbot.waitUntil(lambda: aborted == [True], timeout=2000)
    assert closed.is_set()


def test_generator_worker_reports_errors_and_return_values(qtbot):
    manager = WorkerManager()
    errors, values = [], []
    bad = GeneratorWorker(lambda: 1 / 0)
    bad.errored.connect(errors.append)
    good = GeneratorWorker(lambda: 42)
    good.returned.connect(values.append)
    with qtbot.waitSignals([bad.finished, good.finished], timeout=5000):
        manager.start(bad)
        manager.start(good)
    assert isinstance(errors[0], ZeroDivisionError) and values == [42]


def test_latest_request_wins_and_stale_requests_are_dropped(qtbot):
    loader = LatestRequestThread("test")
    gate = threading.Event()
    ran = []

    def slow(x):
        gate.wait(5)
        ran.append(x)
        return x

    results = []
    loader.done.connect(lambda ch, rid, res: results.append((res, loader.is_current(ch, rid))))
    loader.submit("frame", slow, 1)  # starts running, blocked on the gate
    qtbot.waitUntil(lambda: loader.idle(), timeout=2000)
    for x in (2, 3, 4, 5):  # arrive while 1 runs: only 5 survives
        loader.submit("frame", slow, x)
    gate.set()
    qtbot.waitUntil(lambda: len(results) == 2, timeout=5000)
    time.sleep(0.05)
    assert ran == [1, 5]
    assert results == [(1, False), (5, True)]  # 1 finished but is stale: the GUI ignores it
    assert loader.dropped == 3
    assert loader.stop()
    assert not loader.isRunning()


def test_latest_request_failures_are_reported(qtbot):
    loader = LatestRequestThread("test")
    with qtbot.waitSignal(loader.failed, timeout=5000) as blocker:
        loader.submit("probe", lambda: {}["missing"])
    channel, _rid, exc = blocker.args
    assert channel == "probe" and isinstance(exc, KeyError)
    loader.stop()
