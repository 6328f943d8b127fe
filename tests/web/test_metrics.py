"""`/metrics` on the dashboard: the same figures as the textfile, for whoever may read."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from webtools import Client, add_user

FAILING = """
    from overnight import Batch
    batch = Batch("demo")
    batch.command("extract", "echo extracting {date}")
    batch.command("load", "exit 1")
"""


def test_metrics_are_prometheus_text_with_each_batchs_state(project, serve):
    project.write_batch("demo", FAILING)
    assert project.run("run", "demo").returncode == 1  # the expected night: the default date
    server = serve(project)
    status, headers, body = Client(server.url).get("/metrics")  # no users: anyone on this machine
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    found = {f.name: f.samples for f in text_string_to_metric_families(body.decode())}
    state = {s.labels["overnight_last_run_state"]: s.value for s in found["overnight_last_run_state"]
             if s.labels["batch"] == "demo"}
    assert state["failed"] == 1.0
    assert [s.value for s in found["overnight_check_status"]] == [2.0]


def test_metrics_need_the_right_to_read_once_users_exist(project, serve):
    project.write_batch("demo", FAILING)
    add_user(project, "ann", "a long enough password", "viewer")
    server = serve(project)
    status, _, _ = Client(server.url).get("/metrics")
    assert status == 401
    client = Client(server.url)
    client.login("ann", "a long enough password")
    assert client.get("/metrics")[0] == 200
