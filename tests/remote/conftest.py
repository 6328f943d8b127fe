"""A real redis-server and real `overnight worker` processes, shared by the remote tests.

Two workers on two queues ("alpha", "beta") stand in for two hosts. Tests that kill a
worker or the broker start their own, so the shared ones stay healthy.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .cluster import HEARTBEAT, Cluster, Worker, wait_until_serving


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    cluster = Cluster(root)
    cluster.redis.start()
    try:
        for queue in ("alpha", "beta"):
            cluster.workers[queue] = Worker(root / f"host-{queue}", cluster.broker, queue)
            cluster.workers[queue].start(wait=False)
        wait_until_serving(cluster.broker, ["alpha", "beta"])
        yield cluster
    finally:
        for worker in cluster.workers.values():
            worker.stop()
        cluster.redis.stop()


@pytest.fixture
def remote_project(project, cluster, monkeypatch):  # noqa: ANN001, ANN201 - a conftest Project
    monkeypatch.setenv("OVERNIGHT_REMOTE_HEARTBEAT", HEARTBEAT)
    project.write_config(cluster.config())
    return project
