"""The layout of the state folder is a contract: earlier versions wrote it, users rotate and
back up its files. Each path here is one that an existing installation already has."""

from __future__ import annotations

from pathlib import Path

from overnight.config import parse_config
from overnight.statefolder import StateFolder

ROOT = Path("/var/lib/overnight")


def test_every_file_is_where_earlier_versions_put_it() -> None:
    state = StateFolder(ROOT)
    assert state.ledger == ROOT / "ledger.db"
    assert state.batch_lock("all") == ROOT / "locks/all.lock"
    assert state.scheduler_lock == ROOT / "scheduler.lock"
    assert state.resources == ROOT / "resources"
    assert state.web_secret == ROOT / "web-secret"
    night = state.run_logs("all", "2026-11-26")
    assert night.attempt("export", 2) == f"{ROOT}/logs/all/2026-11-26/export.2.log"
    assert night.fallback("export") == f"{ROOT}/logs/all/2026-11-26/export.log"
    worker = state.worker_run_logs("all", "2026-11-26").attempt("export", 1, "task-id")
    assert worker == f"{ROOT}/remote-logs/all/2026-11-26/export.1.task-id.log"
    assert state.scheduler_log("all", "2026-11-26", "20261127T010000Z") == (
        ROOT / "logs/scheduler/all/2026-11-26-20261127T010000Z.log"
    )
    assert state.cron_log("all") == ROOT / "logs/cron/all.log"
    web = state.web_launch_log("run")
    assert web.parent == ROOT / "logs/web" and web.name.endswith(".log") and "-run-" in web.name


def test_two_dashboard_launches_in_one_second_get_two_files() -> None:
    state = StateFolder(ROOT)
    assert state.web_launch_log("run") != state.web_launch_log("run")


def test_state_dir_is_relative_to_the_config_file_not_to_the_working_folder(tmp_path: Path) -> None:
    config = parse_config({"overnight": {"state_dir": "var/state"}}, tmp_path / "overnight.toml")
    assert config.state.ledger == tmp_path / "var/state/ledger.db"
