"""The ledger's storage failing: read-only, full, damaged, or from a newer overnight.

Each gives one line naming the file and what to do, a non-zero exit, and never a lost
record: a step whose success could not be recorded is not reported succeeded, and the
first launch after the fault is cleared resumes the run correctly.

The read-only and full filesystems are real: a read-only bind mount in a private mount
namespace (`unshare -m`; root ignores mode bits, so chmod would prove nothing), a
size-limited tmpfs, and RLIMIT_FSIZE. These tests need root, as CI has.
"""

from __future__ import annotations

import errno
import os
import resource
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

import faultkit
import pytest
from clikit import wait_for
from faultkit import Witness

GATED = """
from overnight import Batch

batch = Batch("gated")
batch.command("first", 'echo "first start $OVERNIGHT_ATTEMPT" >> witness/{date}; echo "first end $OVERNIGHT_ATTEMPT" >> witness/{date}')
batch.command("gate", 'echo "gate start $OVERNIGHT_ATTEMPT" >> witness/{date}; while [ ! -e gates/{date} ]; do sleep 0.02; done; echo "gate end $OVERNIGHT_ATTEMPT" >> witness/{date}')
batch.command("last", 'echo "last start $OVERNIGHT_ATTEMPT" >> witness/{date}; echo "last end $OVERNIGHT_ATTEMPT" >> witness/{date}')
"""  # noqa: E501


def one_line(result: subprocess.CompletedProcess[str] | tuple[int, str]) -> str:
    err = result.stderr if isinstance(result, subprocess.CompletedProcess) else result[1]
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]



@pytest.fixture
def gated(project):  # noqa: ANN001, ANN201
    project.write_batch("gated", GATED)
    (project.root / "witness").mkdir()
    (project.root / "gates").mkdir()
    return project


def open_gate(project, day: str) -> None:  # noqa: ANN001
    (project.root / "gates" / day).touch()


def check_consistent(project, day: str) -> faultkit.RunView | None:  # noqa: ANN001
    view = faultkit.read_run(project.ledger_path, "gated", day)
    problems = faultkit.integrity_problems(project.ledger_path)
    problems += faultkit.check_run(view, Witness.read(project.root / "witness" / day), None)
    assert not problems, "; ".join(problems)
    return view


def resume_succeeds(project, day: str) -> faultkit.RunView:  # noqa: ANN001
    open_gate(project, day)
    result = project.run("run", "gated", "--date", day)
    assert result.returncode == 0, result.stderr + result.stdout
    view = check_consistent(project, day)
    assert view is not None and set(view.steps.values()) == {"succeeded"}
    witness = Witness.read(project.root / "witness" / day)
    assert witness.ends["last"] == [1] and witness.ends["first"] == [1], "a finished step ran again"
    return view


# -- read-only ---------------------------------------------------------------------------


def read_only(project, *args: str) -> subprocess.CompletedProcess[str]:  # noqa: ANN001
    """`overnight ARGS` with the state directory mounted read-only for it alone."""
    state = shlex.quote(str(project.state_dir))
    command = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "overnight", *args])
    script = f"mount --bind {state} {state} && mount -o remount,bind,ro {state} && exec {command}"
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script], cwd=project.root, env=project.env(),
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )


def test_a_read_only_state_directory_is_one_line_and_nothing_is_lost(gated) -> None:
    open_gate(gated, "2026-11-01")
    assert gated.run("run", "gated", "--date", "2026-11-01").returncode == 0
    before = faultkit.ledger_dump(gated.ledger_path)
    result = read_only(gated, "run", "gated", "--date", "2026-11-02")
    assert result.returncode == 2, result.stderr
    line = one_line(result)
    assert str(gated.state_dir) in line and "read-only" in line.lower(), line
    assert "check the owner and mode of the state directory" in line, line
    assert not (gated.root / "witness" / "2026-11-02").exists(), "a step ran without a record"
    assert faultkit.ledger_dump(gated.ledger_path) == before
    # Reading still works on a read-only state directory.
    status = read_only(gated, "status", "gated", "--date", "2026-11-01")
    assert status.returncode == 0, status.stderr
    resume_succeeds(gated, "2026-11-02")


# -- a full disk -------------------------------------------------------------------------


@pytest.fixture
def small_disk(gated):  # noqa: ANN001, ANN201
    """The state directory on a 2 MB tmpfs of its own."""
    gated.state_dir.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(gated.state_dir)],
        capture_output=True, text=True,
    )
    assert mounted.returncode == 0, f"this test needs root to mount a tmpfs: {mounted.stderr}"
    yield gated
    subprocess.run(["umount", "-l", str(gated.state_dir)], check=True)


def fill(folder: Path) -> Path:
    """Fill the filesystem of `folder` to the last byte."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (1 << 16, 4096, 512, 1):
            while True:
                try:
                    f.write(b"\0" * size)
                except OSError as e:
                    assert e.errno == errno.ENOSPC, e
                    break
    return filler


def test_a_disk_that_fills_while_a_step_runs_loses_no_record(small_disk) -> None:
    """The step's success cannot be committed: the launch stops with one line, the step is
    not reported succeeded, nothing after it starts; once space is freed the resume runs
    the step again (it finished, but its success was never recorded) and finishes."""
    project, day = small_disk, "2026-11-03"
    process = project.start("run", "gated", "--date", day)
    wait_for(lambda: "gate" in Witness.read(project.root / "witness" / day).starts)
    filler = fill(project.state_dir)
    open_gate(project, day)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 2, err + out
    line = one_line((process.returncode, err))
    assert str(project.ledger_path) in line and "disk is full" in line, line
    assert "free space, then run the same command again" in line
    assert "ok       gate" not in out and "succeeded" not in out, out  # nothing claimed done
    view = check_consistent(project, day)
    assert view is not None and view.steps["gate"] != "succeeded"
    assert "last" not in Witness.read(project.root / "witness" / day).starts
    status = project.status("gated", "--date", day)  # reading works on a full disk
    # the runner has gone, so readers see the step as the next launch will record it
    assert {s["name"]: s["state"] for s in status["steps"]}["gate"] == "interrupted"
    filler.unlink()
    view = resume_succeeds(project, day)
    assert [a["state"] for a in view.attempts["gate"]] == ["interrupted", "succeeded"]


def test_a_full_disk_before_the_launch_is_one_line(small_disk) -> None:
    project = small_disk
    open_gate(project, "2026-11-04")
    assert project.run("run", "gated", "--date", "2026-11-04").returncode == 0
    before = faultkit.ledger_dump(project.ledger_path)
    filler = fill(project.state_dir)
    result = project.run("run", "gated", "--date", "2026-11-05")
    assert result.returncode == 2, result.stderr
    line = one_line(result)
    assert str(project.ledger_path) in line and "run the same command again" in line, line
    status = project.run("status", "gated")  # reading may work, or say why not in one line
    assert status.returncode == 0 or "run the same command again" in one_line(status)
    filler.unlink()
    assert faultkit.ledger_dump(project.ledger_path) == before
    check_consistent(project, "2026-11-05")
    resume_succeeds(project, "2026-11-05")


def test_a_file_size_limit_hit_mid_run_loses_no_record(project) -> None:
    """RLIMIT_FSIZE: the ledger's files may not grow past 48 KiB; the witness batch's
    records outgrow that part way through its launch."""
    faultkit.write_witness_batch(project)
    limit = 48 * 1024

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(
        [sys.executable, "-m", "overnight", "run", "witness", "--date", "2026-11-06", "-w", "3"],
        cwd=project.root, env=project.env(), capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL, preexec_fn=limited,
    )
    assert result.returncode == 2, result.stderr + result.stdout
    line = one_line(result)
    assert str(project.ledger_path) in line and "run the same command again" in line, line
    witness = project.root / "witness" / "2026-11-06"
    view = faultkit.read_run(project.ledger_path, "witness", "2026-11-06")
    assert not faultkit.check_run(view, Witness.read(witness), None)
    resumed = project.run("run", "witness", "--date", "2026-11-06", "-w", "3", timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    view = faultkit.read_run(project.ledger_path, "witness", "2026-11-06")
    assert view is not None and set(view.steps.values()) == {"succeeded"}
    assert not faultkit.check_run(view, Witness.read(witness), None)


# -- a damaged ledger, or one from a newer overnight ---------------------------------------


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def garbage(path: Path) -> None:
    path.write_bytes(os.urandom(len(path.read_bytes())))


def damaged_page(path: Path) -> None:
    """A valid header and page count, one page in the middle overwritten."""
    with open(path, "r+b") as f:
        f.seek(2 * 4096)
        f.write(os.urandom(4096))


def newer_schema(path: Path) -> None:
    from overnight.ledger import SCHEMA_VERSION

    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()


def folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


FAULTS = {
    "a-folder": (folder, "is not a file", "move it aside"),
    "truncated": (truncate, "damaged", "move it aside"),
    "garbage": (garbage, "damaged", "move it aside"),
    "damaged-page": (damaged_page, "damaged", "move it aside"),
    "newer-schema": (newer_schema, "newer overnight", "upgrade overnight"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_damaged_or_newer_ledger_is_one_line_for_every_command(gated, fault: str) -> None:
    for day in ("2026-11-07", "2026-11-08", "2026-11-09"):
        open_gate(gated, day)
        assert gated.run("run", "gated", "--date", day).returncode == 0
    damage, what, todo = FAULTS[fault]
    good = gated.ledger_path.read_bytes()
    damage(gated.ledger_path)
    broken = faultkit.snapshot(gated.ledger_path)
    for args in (
        ["run", "gated", "--date", "2026-11-10"], ["status", "gated"], ["status"],
        ["history"], ["list"], ["mark", "gated", "first", "--redo", "--date", "2026-11-07"],
        ["logs", "gated", "first"],
    ):
        result = gated.run(*args)
        if fault == "damaged-page" and args[0] != "run" and result.returncode == 0:
            continue  # this command never reads the damaged page
        assert result.returncode == 2, f"{args}: exit {result.returncode}: {result.stderr}"
        line = one_line(result)
        assert str(gated.ledger_path) in line and what in line and todo in line, f"{args}: {line}"
        assert faultkit.snapshot(gated.ledger_path) == broken, f"{args} wrote into the damaged ledger"
    assert not (gated.root / "witness" / "2026-11-10").exists(), "a step ran without a record"
    # Restored from the backup, the ledger carries on as if nothing had happened.
    if gated.ledger_path.is_dir():
        gated.ledger_path.rmdir()
    gated.ledger_path.write_bytes(good)
    for suffix in ("-wal", "-shm"):
        Path(str(gated.ledger_path) + suffix).unlink(missing_ok=True)
    resume_succeeds(gated, "2026-11-10")


# -- an older ledger met by several commands at once ---------------------------------------


def test_an_older_ledger_opened_by_many_commands_at_once_is_upgraded_once(project) -> None:  # noqa: ANN001
    """After installing a new version, the scheduler, a cron'd run, `status` and the
    dashboard may all open the old file in the same instant: each upgrades it or waits for
    the one that does; none fails, none applies a migration twice, no record is lost."""
    from v1ledger import write_v1_ledger

    from overnight.ledger import SCHEMA_VERSION

    project.write_batch("nightly", 'from overnight import Batch\nbatch = Batch("nightly")\n'
                        'batch.command("extract", "true")\nbatch.command("load", "true")\n')
    write_v1_ledger(project.ledger_path)
    commands = [
        ["status", "nightly", "--json", "--date", "2026-11-20"], ["history", "--json"], ["list"],
        ["run", "nightly", "--date", "2026-11-21"], ["status", "--json"],
        ["status", "nightly", "--json", "--date", "2026-11-20"], ["history"], ["list", "--json"],
    ]
    started = [project.start(*args) for args in commands]
    for args, process in zip(commands, started, strict=True):
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, f"{args}: exit {process.returncode}: {err}"
        assert "Traceback" not in err, err
    assert project.query("PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert project.states("nightly", "--date", "2026-11-20") == {
        "extract": "succeeded", "load": "succeeded", "tidy": "skipped",
    }
    assert project.states("nightly", "--date", "2026-11-21") == {"extract": "succeeded", "load": "succeeded"}
    assert project.query("SELECT count(*) FROM attempts") == [(5,)]
