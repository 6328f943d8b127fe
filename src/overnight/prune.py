"""`overnight prune --older-than 400d`: forget the detail of old nights, keep their outcome.

For each night (a run) dated before the cutoff, by its business date: its steps' log files
(logs/BATCH/DATE/), its attempt records (each try's start, end and exit code) and the
scheduler's logs of its fires (logs/scheduler/BATCH/DATE-*.log) go. Its run, its steps'
final states, its launches, marks and report records stay: `history` still shows it.
Dashboard launch logs (logs/web/), the dashboard's audit entries and, on a worker host, the
remote steps' logs (remote-logs/BATCH/DATE/) older than the cutoff go too.

Never pruned:
- a night that has not succeeded (failed, cancelled, crashed, still running): a resume
  or an investigation needs its records. Settle it with `overnight mark` if it never will;
- each batch's last successful night, however old: it is what "last good" points to.

No lock is taken (a scheduled night must never find its batch held by a prune): a launch
that starts on a pruned night meanwhile makes it running, and what it writes is newer
than the prune's start; only older files and records go, and records only of a night
still succeeded when they are deleted.

Nothing outside the state folder is ever removed, whatever path a record names.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from overnight.config import Config
from overnight.errors import ConfigError
from overnight.ledger import Ledger, RunRow
from overnight.statefolder import StateFolder

DAY = 86400.0
CHUNK = 500  # run ids per statement


def cutoff_for(today: date, older_than: float) -> date:
    """The first date kept: nights dated before it are older than `older_than` seconds."""
    if older_than < DAY:
        raise ConfigError(
            f"--older-than {older_than:g}s: keep at least one day (e.g. 400d; a bare number is seconds)"
        )
    return today - timedelta(days=int(older_than // DAY))


@dataclass
class Freed:
    files: int = 0
    bytes: int = 0

    def add(self, other: Freed) -> None:
        self.files += other.files
        self.bytes += other.bytes


@dataclass
class Pruned:
    cutoff: date
    dry_run: bool
    nights: list[tuple[str, str]] = field(default_factory=list)        # (batch, date) pruned
    attempts: int = 0                                                  # attempt records
    logs: Freed = field(default_factory=Freed)                         # the steps' logs
    scheduler_logs: Freed = field(default_factory=Freed)
    other_logs: Freed = field(default_factory=Freed)                   # dashboard, worker hosts
    audit: int = 0                                                     # the dashboard's audit entries
    unfinished: list[tuple[str, str, str]] = field(default_factory=list)  # (batch, date, state) kept
    last_success: list[tuple[str, str]] = field(default_factory=list)     # (batch, date) kept

    def lines(self) -> list[str]:
        verb = "would prune" if self.dry_run else "pruned"
        freed = Freed()
        for part in (self.logs, self.scheduler_logs, self.other_logs):
            freed.add(part)
        batches = sorted({b for b, _ in self.nights})
        out = [
            f"{verb} what is older than {self.cutoff.isoformat()}: {len(self.nights)} night"
            f"{'s' * (len(self.nights) != 1)}" + (f" of {', '.join(batches)}" if batches else "")
            + f", {self.attempts} attempt record{'s' * (self.attempts != 1)}, {freed.files} log file"
            f"{'s' * (freed.files != 1)} ({size(freed.bytes)})"
        ]
        if self.audit:
            out.append(f"{verb} {self.audit} audit entr{'ies' if self.audit != 1 else 'y'} of the dashboard")
        if self.unfinished:
            shown = ", ".join(f"{b} {d} ({s})" for b, d, s in self.unfinished[:5])
            more = f" and {len(self.unfinished) - 5} more" if len(self.unfinished) > 5 else ""
            out.append(f"kept {len(self.unfinished)} night{'s' * (len(self.unfinished) != 1)} that "
                       f"did not succeed: {shown}{more} (settle them with `overnight mark` to let them go)")
        if self.last_success:
            shown = ", ".join(f"{b} {d}" for b, d in self.last_success)
            out.append(f"kept each batch's last successful night: {shown}")
        return out


def size(count: int) -> str:
    value = float(count)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def prune(config: Config, older_than: float, today: date, *, dry_run: bool = False) -> Pruned:
    """Forget what is older than `older_than` seconds before `today` (see the module)."""
    state = config.state
    result = Pruned(cutoff_for(today, older_than), dry_run)
    cutoff = result.cutoff.isoformat()
    started = time.time()
    if state.ledger.exists():
        ledger = Ledger.open(state.ledger)
        try:
            _prune_nights(ledger, state, result, cutoff, started)
            _prune_audit(ledger, result)
        finally:
            ledger.close()
    result.other_logs.add(_prune_web_logs(state, result.cutoff, dry_run))
    result.other_logs.add(prune_dated_folders(state.root / "remote-logs", cutoff, set(), dry_run))
    return result


def _prune_audit(ledger: Ledger, result: Pruned) -> None:
    """The dashboard's audit record ages like the logs: a guesser spread over many addresses
    adds entries, and nothing else would ever remove them."""
    before = datetime.combine(result.cutoff, datetime.min.time()).timestamp()
    if result.dry_run:
        result.audit = ledger.audit_before(before)
        return
    with ledger.transaction():
        result.audit = ledger.forget_audit_before(before)


def _prune_nights(ledger: Ledger, state: StateFolder, result: Pruned, cutoff: str, started: float) -> None:
    last = ledger.last_successes()
    by_batch: dict[str, list[RunRow]] = {}
    for run in ledger.runs_before(cutoff):
        by_batch.setdefault(run.batch, []).append(run)
    for batch, runs in sorted(by_batch.items()):
        _prune_batch(ledger, state, result, batch, runs, last.get(batch), started)


def _prune_batch(
    ledger: Ledger, state: StateFolder, result: Pruned, batch: str, runs: list[RunRow], last: str | None,
    started: float,
) -> None:
    gone: list[RunRow] = []
    for run in runs:
        if run.state != "succeeded":
            result.unfinished.append((batch, run.date, run.state))
        elif run.date == last:
            result.last_success.append((batch, run.date))
        else:
            gone.append(run)
    kept = {run.date for run in runs} - {run.date for run in gone}
    counts: dict[int, int] = {}
    for chunk in _chunks([run.id for run in gone]):
        counts.update(ledger.attempts_per_run(chunk))
    # Nights pruned before have nothing left to free: not counted again.
    gone = [run for run in gone if counts.get(run.id) or state.run_logs(batch, run.date).folder.exists()]
    ids = [run.id for run in gone]
    logs = Remover(state.logs, result.dry_run, before=started)
    for chunk in _chunks(ids):  # what the attempts name (wherever it is: Remover says if it may go)
        for path in ledger.attempt_log_paths(chunk):
            result.logs.add(logs.file(Path(path)))
    for run in gone:  # and whatever else is in their nights' folders
        result.logs.add(logs.tree(state.run_logs(batch, run.date).folder))
    result.scheduler_logs.add(_prune_scheduler_logs(state, batch, result.cutoff.isoformat(), kept,
                                                    result.dry_run))
    result.attempts += sum(counts.get(i, 0) for i in ids)
    if not result.dry_run:
        with ledger.transaction():
            for chunk in _chunks(ids):
                ledger.forget_attempts(chunk, before=started)
    result.nights += [(batch, run.date) for run in gone]


def _chunks(ids: list[int]) -> list[list[int]]:
    return [ids[i:i + CHUNK] for i in range(0, len(ids), CHUNK)]


def _prune_scheduler_logs(
    state: StateFolder, batch: str, cutoff: str, kept: set[str], dry_run: bool,
) -> Freed:
    """logs/scheduler/BATCH/DATE-AT.log of the dates before the cutoff, but those kept."""
    folder = state.scheduler_log(batch, cutoff, "x").parent
    remover, freed = Remover(state.logs, dry_run), Freed()
    for path in _files(folder):
        day = path.name[:10]
        if _is_date(day) and day < cutoff and day not in kept:
            freed.add(remover.file(path))
    return freed


def _prune_web_logs(state: StateFolder, cutoff: date, dry_run: bool) -> Freed:
    """logs/web/YYYYMMDD-HHMMSS-COMMAND-....log: what the dashboard's buttons started."""
    folder = state.web_launch_log("x").parent
    stamp = cutoff.strftime("%Y%m%d")
    remover, freed = Remover(state.logs, dry_run), Freed()
    for path in _files(folder):
        if path.name[:8].isdigit() and path.name[:8] < stamp:
            freed.add(remover.file(path))
    return freed


def prune_dated_folders(root: Path, cutoff: str, kept: set[tuple[str, str]], dry_run: bool) -> Freed:
    """Folders laid out ROOT/BATCH/DATE/ (a worker host's remote-logs): those dated before
    `cutoff`, but the (batch, date) in `kept`, go with their files."""
    remover, freed = Remover(root, dry_run), Freed()
    for batch_folder in _folders(root):
        for day_folder in _folders(batch_folder):
            day = day_folder.name
            if _is_date(day) and day < cutoff and (batch_folder.name, day) not in kept:
                freed.add(remover.tree(day_folder))
    return freed


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


def _files(folder: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(folder) if e.is_file(follow_symlinks=False)]
    except OSError:
        return []


def _folders(folder: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(folder) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


class Remover:
    """Removes regular files under one root, each once however it is spelled: never
    outside the root (a path that leads out through a link included), never what a link
    points to, never a file written at or after `before` (by a launch that began
    meanwhile). In a dry run it only counts them."""

    def __init__(self, root: Path, dry_run: bool, before: float | None = None) -> None:
        self.root = root.resolve()
        self.dry_run = dry_run
        self.before = before
        self._inside: dict[str, bool] = {}      # per folder: it is under the root
        self._seen: set[tuple[int, int]] = set()  # (device, inode) of each file a dry run counted

    def inside(self, folder: Path) -> bool:
        key = str(folder)
        if key not in self._inside:
            try:
                self._inside[key] = folder.resolve().is_relative_to(self.root)
            except OSError:
                self._inside[key] = False
        return self._inside[key]

    def file(self, path: Path) -> Freed:
        if not self.inside(path.parent):
            return Freed()
        try:
            info = os.lstat(path)
            if self.before is not None and info.st_mtime >= self.before:
                return Freed()
            if self.dry_run and (info.st_dev, info.st_ino) in self._seen:
                return Freed()  # the same file by another spelling (removed, it would be gone)
            if not self.dry_run:
                os.unlink(path)
        except OSError:
            return Freed()  # gone already, or not ours to remove: nothing freed
        self._seen.add((info.st_dev, info.st_ino))
        return Freed(1, info.st_size)

    def tree(self, folder: Path) -> Freed:
        """Every file in `folder` and below; then the folders left empty, and its parent
        if that is empty too (logs/BATCH/ once its last night is gone)."""
        freed = Freed()
        if folder.is_symlink() or not self.inside(folder):
            return freed
        for dirpath, _, filenames in os.walk(folder):
            for name in filenames:
                freed.add(self.file(Path(dirpath) / name))
        if not self.dry_run:
            for dirpath, _, _ in os.walk(folder, topdown=False):
                _remove_if_empty(Path(dirpath))
            _remove_if_empty(folder.parent)
        return freed


def _remove_if_empty(folder: Path) -> None:
    try:
        os.rmdir(folder)
    except OSError:
        pass


# -- once a day, from the scheduler ([retention] keep) ---------------------------------


def start_daily_prune(
    config: Config, now: float, program: list[str] | None = None,
) -> subprocess.Popen[bytes] | None:
    """Start `overnight prune` in a process of its own when the last one began a day ago or
    more (the time of logs/prune.log says when), its output appended to that file; None
    when it is not due. The scheduler calls this on each pass."""
    from overnight.commandline import CommandLine

    assert config.retention is not None
    log = config.state.prune_log
    try:
        if now - log.stat().st_mtime < DAY:
            return None
    except FileNotFoundError:
        pass
    seconds = config.retention.keep
    keep = f"{seconds / DAY:.0f}d" if seconds % DAY == 0 else f"{seconds:.0f}s"
    argv = CommandLine.of(config).argv("prune", "--older-than", keep, program=program)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S %z")
        out.write(f"# {stamp}: overnight prune --older-than {keep}\n".encode())
        out.flush()
        return subprocess.Popen(argv, cwd=config.base_dir, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
