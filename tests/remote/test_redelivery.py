"""A task delivered twice never runs its step twice: the worker checks its own record first."""

from __future__ import annotations

import time
import uuid

import pytest
from celery.exceptions import TaskRevokedError
from clikit import wait_for

from overnight.config import CeleryConfig
from overnight.remote.celery_app import TASK_NAME, make_app

# Celery's Redis backend calls a method redis-py deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")


def _payload(witness, name: str = "dup") -> dict:  # noqa: ANN001
    return {
        "batch": "night", "step": name, "kind": "command", "command": f"echo ran >> {witness}",
        "module": "night.py", "module_path": "/nonexistent/night.py", "date": "2026-11-26",
        "attempt": 1, "run_id": 1, "cwd": None, "env": {}, "timeout": None, "kill_grace": 1.0,
        "heartbeat": 0.5,
    }


def test_a_second_delivery_of_a_finished_task_does_not_run_it_again(cluster, tmp_path):
    app = make_app(CeleryConfig(broker=cluster.broker))
    witness = tmp_path / "witness.txt"
    task_id = str(uuid.uuid4())
    try:
        first = app.send_task(TASK_NAME, args=[_payload(witness)], queue="alpha", task_id=task_id)
        assert first.get(timeout=30)["exit_code"] == 0
        app.send_task(TASK_NAME, args=[_payload(witness)], queue="alpha", task_id=task_id)
        log = cluster.workers["alpha"].home / "worker.log"
        wait_for(lambda: f"[{task_id}] ignored" in log.read_text(), 30, "the second delivery to be ignored")
        assert witness.read_text() == "ran\n"
        assert app.AsyncResult(task_id).get(timeout=5)["exit_code"] == 0  # the first result stands
    finally:
        app.close()


def test_a_redelivery_after_its_worker_died_reports_interrupted_without_running(cluster, tmp_path):
    """Its record says STARTED with a heartbeat long gone: the step is not run again here."""
    app = make_app(CeleryConfig(broker=cluster.broker))
    witness = tmp_path / "witness.txt"
    task_id = str(uuid.uuid4())
    try:
        app.backend.store_result(task_id, {"host": "db-server", "heartbeat": time.time() - 3600}, "STARTED")
        result = app.send_task(TASK_NAME, args=[_payload(witness)], queue="beta", task_id=task_id)
        answer = result.get(timeout=30)
        assert answer["outcome"] == "interrupted" and answer["host"] == "db-server"
        assert not witness.exists()
    finally:
        app.close()


def test_a_task_the_coordinator_gave_up_on_is_never_run(cluster, tmp_path):
    app = make_app(CeleryConfig(broker=cluster.broker))
    witness = tmp_path / "witness.txt"
    task_id = str(uuid.uuid4())
    try:
        app.backend.store_result(task_id, TaskRevokedError("no worker took it"), "REVOKED")
        app.send_task(TASK_NAME, args=[_payload(witness)], queue="beta", task_id=task_id)
        log = cluster.workers["beta"].home / "worker.log"
        wait_for(lambda: f"[{task_id}] ignored" in log.read_text(), 30, "the abandoned task to be ignored")
        assert not witness.exists()
    finally:
        app.close()


def test_a_worker_stops_a_step_the_coordinator_has_given_up_on(cluster, tmp_path):
    """The coordinator wrote REVOKED over the record (it thought the worker lost): the
    worker's next heartbeat sees it and kills the step, so it cannot also run elsewhere."""
    app = make_app(CeleryConfig(broker=cluster.broker))
    witness = tmp_path / "witness.txt"
    payload = _payload(witness)
    payload["command"] = f"echo started >> {witness}; sleep 60; echo finished >> {witness}"
    task_id = str(uuid.uuid4())
    try:
        app.send_task(TASK_NAME, args=[payload], queue="alpha", task_id=task_id)
        wait_for(lambda: witness.exists(), 30, "the step to start")
        app.backend.store_result(task_id, TaskRevokedError("lost its worker"), "REVOKED")
        meta = wait_for(lambda: (m := app.backend.get_task_meta(task_id, cache=False))["status"] == "SUCCESS"
                        and m, 30, "the worker to report how the step ended")
        answer = meta["result"]
        assert answer["stopped"] == "abandoned", answer
        assert answer["exit_code"] == -9
        assert witness.read_text() == "started\n"
    finally:
        app.close()
