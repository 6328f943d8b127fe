"""Resource pools shared by every launch of a state folder: `[resources] pos_db = 1`.

A step asks with `resources={"pos_db": 1}`. Each unit of a pool is a small file,
`resources/NAME/UNIT.lock` in the state folder; a launch holds a unit while it holds an
flock on that file, and writes who it is into it (batch/step, launch, pid) for the
readers. The kernel drops an flock when its holder dies, so the units of a launch that
died (kill -9, power loss, OOM) are free at once, with no record to clean up; within a
launch, two descriptors of one file exclude each other just as two launches do.

A step takes every unit it asks for at once or none (no step holds part of what it needs
while it waits for the rest: no deadlock between launches). One that finds a pool full
holds no worker: the runner sets it aside, tries again as soon as one of its own steps
gives units back, and every RECHECK seconds for units other launches hold (another launch
cannot wake it: that bound is the price of needing no daemon and no shared memory).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from overnight.errors import DefinitionError, LedgerError

RECHECK = 0.5  # seconds between two tries of a step waiting for units another launch holds


def check_requests(steps: Iterable[Any], capacities: Mapping[str, int], where: str) -> None:
    """Refuse at load a request the pools cannot ever meet: an unknown pool, or more units
    than it has. `steps` are batch.Step objects; `where` names the batch module."""
    for step in steps:
        for name, count in step.resources.items():
            if name not in capacities:
                known = ", ".join(sorted(capacities)) or "none"
                raise DefinitionError(
                    f"{where}: step {step.name!r} asks for resource {name!r}, which overnight.toml "
                    f"does not define (add [resources] {name} = 1; defined: {known})"
                )
            if count > capacities[name]:
                raise DefinitionError(
                    f"{where}: step {step.name!r} asks for {count} units of {name!r}, which has "
                    f"{capacities[name]} ([resources] in overnight.toml)"
                )


class ResourcePool:
    """The units this launch holds, per step, as open descriptors with their flocks."""

    def __init__(self, folder: Path, capacities: Mapping[str, int]) -> None:
        self.folder = folder
        self.capacities = dict(capacities)
        self.holder: dict[str, Any] = {"pid": os.getpid(), "host": socket.gethostname()}
        self.held: dict[str, list[int]] = {}  # step -> descriptors holding its units
        self._made: set[str] = set()

    def take(self, step: str, wanted: Mapping[str, int]) -> str | None:
        """Take every unit `step` asks for: None when taken, else the pool that is full."""
        taken: list[int] = []
        for name, count in sorted(wanted.items()):
            got = 0
            for unit in range(self.capacities[name]):
                fd = self._try(name, unit)
                if fd is not None:
                    taken.append(fd)
                    got += 1
                    if got == count:
                        break
            if got < count:
                _close_all(taken)
                return name
        said = json.dumps({**self.holder, "step": step}).encode()
        for fd in taken:
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, said, 0)
            except OSError:
                pass  # the unit is held all the same; only who holds it goes unsaid
        self.held[step] = taken
        return None

    def give_back(self, step: str) -> bool:
        """Free the units `step` held; True if it held any."""
        fds = self.held.pop(step, None)
        if not fds:
            return False
        for fd in fds:
            try:
                os.ftruncate(fd, 0)  # no stale name for a reader between two holders
            except OSError:
                pass
        _close_all(fds)
        return True

    def close(self) -> None:
        for step in list(self.held):
            self.give_back(step)

    def _try(self, name: str, unit: int) -> int | None:
        folder = self.folder / name
        path = folder / f"{unit}.lock"
        try:
            if name not in self._made:
                folder.mkdir(parents=True, exist_ok=True)
                self._made.add(name)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise LedgerError(
                f"{path}: cannot create the resource's lock file ({e.strerror}): check the owner "
                "and mode of the state directory"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)  # the flock goes with the last descriptor of the file
    fds.clear()


def holders(folder: Path, name: str) -> list[str]:
    """Who holds units of pool `name` now, as "batch/step" (the readers' view): the unit
    files an flock is held on, by the words their holders wrote in them."""
    try:
        units = sorted((folder / name).glob("*.lock"))
    except OSError:
        return []
    locked = _flocked()
    found: list[str] = []
    for path in units:
        try:
            st = path.stat()
        except OSError:
            continue
        if (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino) not in locked:
            continue
        try:
            said = json.loads(path.read_text() or "{}")
        except (OSError, ValueError):
            said = {}
        found.append(f"{said.get('batch', '?')}/{said.get('step', '?')}" if said else "another launch")
    return found


def _flocked() -> set[tuple[int, int, int]]:
    """(major, minor, inode) of every file an flock is held on (waiters left out)."""
    out: set[tuple[int, int, int]] = set()
    try:
        with open("/proc/locks") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 6 and fields[1] == "FLOCK" and "->" not in fields:
                    major, minor, inode = fields[5].split(":")
                    out.add((int(major, 16), int(minor, 16), int(inode)))
    except (OSError, ValueError):
        pass
    return out


WAITING = "waiting for "


def waiting_note(pool: str) -> str:
    """What the ledger says of a pending step set aside for a full pool (its message)."""
    return f"{WAITING}{pool}"


def waited_pool(message: str | None) -> str | None:
    """The pool a pending step's message says it waits for, if it says so."""
    if message and message.startswith(WAITING) and " " not in message[len(WAITING):]:
        return message[len(WAITING):]
    return None
