"""The kill net: what makes sure that everything a step starts dies with it.

Two nets, the best this machine allows:

- **cgroup** (cgroup v2 with ``cgroup.kill``, writable: root, or a delegated subtree as
  under systemd with ``Delegate=yes``). The runner moves itself into a group of its own per
  launch, and every step starts inside a group of its own below it. A process cannot leave
  a cgroup by ``setsid``, a double fork, ``nohup``, ``env -i`` or ``sudo``: writing 1 to
  ``cgroup.kill`` ends the step's group, or the whole launch, at once.
- **process-group** (everywhere else, or ``OVERNIGHT_KILL_NET=process-group``). Each step
  runs in a session of its own and is stopped through its process group; what leaves the
  group (``setsid``) but keeps its environment carries the launch's token and is found by
  it at the end of the launch. A process that both leaves its group and drops its
  environment (``setsid env -i ...``) escapes this net: use the cgroup net where that
  matters.

The groups live under the runner's own cgroup (found from /proc/self/mountinfo and
/proc/self/cgroup, never a hard-coded path), in ``overnight/``, one folder per launch named
``BATCH.KEY.TOKEN`` where KEY names the ledger. A group a dead launch left behind is
emptied by the next launch of the same batch before it starts anything.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

from overnight.sentinel import kill_group

NET_VARIABLE = "OVERNIGHT_KILL_NET"   # auto (the default) or process-group
FOLDER = "overnight"                  # below the runner's own cgroup


# -- finding cgroup v2 ---------------------------------------------------------------------


def cgroup2_mount(mountinfo: str) -> str | None:
    """Where the cgroup v2 hierarchy is mounted, from the text of /proc/self/mountinfo.

    In the hybrid layout it sits beside the v1 controllers (often /sys/fs/cgroup/unified);
    in the unified layout it is /sys/fs/cgroup itself.
    """
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        if sep and right.split(" ", 1)[0] == "cgroup2":
            fields = left.split()
            if len(fields) >= 5:
                return _unescape(fields[4])
    return None


def own_cgroup(proc_cgroup: str) -> str | None:
    """This process's cgroup v2 path ("/..."), from the text of /proc/self/cgroup."""
    for line in proc_cgroup.splitlines():
        if line.startswith("0::"):
            return line[3:].strip() or "/"
    return None


def _unescape(path: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        path = path.replace(code, char)
    return path


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def my_cgroup_folder() -> tuple[str | None, str]:
    """The folder of this process's own cgroup v2 group, or None and why not."""
    try:
        mount = cgroup2_mount(_read("/proc/self/mountinfo"))
        mine = own_cgroup(_read("/proc/self/cgroup"))
    except OSError as e:
        return None, f"cannot read the mount table: {e.strerror}"
    if mount is None:
        return None, "no cgroup v2 hierarchy is mounted"
    if mine is None:
        return None, "this process is in no cgroup v2 group"
    return os.path.normpath(mount + mine), ""


# -- removing and emptying groups --------------------------------------------------------


def kill_cgroup(path: str) -> None:
    """Every process in the group and below it gets SIGKILL (cgroup.kill), if it exists."""
    try:
        _write(os.path.join(path, "cgroup.kill"), "1")
    except OSError:
        pass


def populated(path: str) -> bool:
    try:
        return "populated 1" in _read(os.path.join(path, "cgroup.events"))
    except OSError:
        return False


def remove_tree(path: str, wait: float = 2.0) -> bool:
    """Kill what is in the group (and below) and remove its folders. True if it is gone."""
    if not os.path.isdir(path):
        return True
    kill_cgroup(path)
    deadline = time.monotonic() + wait
    while True:
        if _rmdir_tree(path):
            return True
        if time.monotonic() > deadline:
            return False
        kill_cgroup(path)  # a process may have been forking as the first kill came
        time.sleep(0.005)


def _rmdir_tree(path: str) -> bool:
    try:
        children = [e.path for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return True
    except OSError:
        return False
    for child in children:
        _rmdir_tree(child)
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def join(path: str, pid: int = 0) -> None:
    """Move process `pid` (0: this one) into the group `path`."""
    _write(os.path.join(path, "cgroup.procs"), str(pid or os.getpid()))


# -- the nets ----------------------------------------------------------------------------


class ProcessGroupNet:
    """Process groups and the launch token: the net where cgroups cannot be used."""

    kind = "process-group"

    def __init__(self, token: str, why: str = "") -> None:
        self.token = token
        self.why = why
        self.launch_group: str | None = None

    def describe(self) -> str:
        why = f" ({self.why})" if self.why else ""
        return f"process groups and the launch token{why}"

    def record(self) -> dict[str, str]:
        """What the next launch needs to empty what this one might leave behind."""
        return {"net": self.kind, "token": self.token}

    def step_group(self, name: str, attempt: int) -> str | None:
        return None

    @contextmanager
    def spawning_into(self, group: str | None) -> Iterator[None]:
        yield

    @contextmanager
    def spawning_outside(self) -> Iterator[None]:
        """For what the runner starts on its own behalf and must outlive the launch (the
        couriers of alerts and pings): born outside the net. Here, by the caller leaving
        out the token and starting a session of its own."""
        yield

    def stop(self, pid: int | None, group: str | None, sig: int, token: str | None = None) -> None:
        """Signal everything of one step: its process group (and its cgroup, or what carries
        its attempt's token, for SIGKILL)."""
        if pid:
            kill_group(pid, sig)
        if sig == signal.SIGKILL and token:
            from overnight.sentinel import kill_token_holders

            kill_token_holders(token)

    def step_ended(self, pid: int, group: str | None, leave_running: bool, token: str | None = None) -> None:
        """The step's own process has exited: what it left behind goes too (what left its
        process group is found by its attempt's token, one look through /proc)."""
        if not leave_running:
            self.stop(pid, group, signal.SIGKILL, token)

    def sweep(self) -> None:
        """Between steps: nothing to tidy for process groups."""

    def close(self) -> None:
        """The launch is over: anything still carrying its token is killed."""
        from overnight.sentinel import kill_token_holders

        kill_token_holders(self.token)


class CgroupNet(ProcessGroupNet):
    """One cgroup v2 group per launch, one per step below it; stopped with cgroup.kill."""

    kind = "cgroup"

    def __init__(self, token: str, origin: str, launch_group: str) -> None:
        super().__init__(token)
        self.origin = origin              # where the runner was: it goes back there
        self.launch_group = launch_group
        self._stale: list[str] = []       # step groups not yet empty when their step ended

    def describe(self) -> str:
        return f"cgroup v2 ({self.launch_group})"

    def record(self) -> dict[str, str]:
        return {"net": self.kind, "token": self.token, "cgroup": str(self.launch_group)}

    def step_group(self, name: str, attempt: int) -> str | None:
        path = f"{self.launch_group}/{name}.{attempt}"
        try:
            os.mkdir(path)
        except FileExistsError:
            remove_tree(path)
            os.mkdir(path)
        return path

    @contextmanager
    def spawning_into(self, group: str | None) -> Iterator[None]:
        """The runner steps into the step's group for the spawn, so the child is born in
        it: moving the child afterwards would leave a moment in which a fork escapes."""
        if group is None:
            yield
            return
        join(group)
        try:
            yield
        finally:
            join(str(self.launch_group))

    @contextmanager
    def spawning_outside(self) -> Iterator[None]:
        """Born in the runner's first group, not the launch's: the end of the launch, or
        the sentinel after the runner's death, must not take a courier with it."""
        join(self.origin)
        try:
            yield
        finally:
            join(str(self.launch_group))

    def stop(self, pid: int | None, group: str | None, sig: int, token: str | None = None) -> None:
        if group is None:  # not (yet) in a group of its own
            super().stop(pid, group, sig, token)
            return
        if pid:
            kill_group(pid, sig)
        if sig == signal.SIGKILL:
            kill_cgroup(group)

    def step_ended(self, pid: int, group: str | None, leave_running: bool, token: str | None = None) -> None:
        if group is None:
            super().step_ended(pid, group, leave_running, token)
            return
        self.sweep()
        if leave_running:
            self._release(group)
            return
        try:
            os.rmdir(group)  # the usual case: nothing was left behind, the group is empty
            return
        except OSError as e:
            if e.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                return
        kill_group(pid)
        kill_cgroup(group)
        self._stale.append(group)

    def _release(self, group: str) -> None:
        """A step that may leave processes running: they move out of the launch's net."""
        try:
            pids = _read(os.path.join(group, "cgroup.procs")).split()
        except OSError:
            pids = []
        for pid in pids:
            try:
                join(self.origin, int(pid))
            except OSError:
                pass
        try:
            os.rmdir(group)
        except OSError:
            self._stale.append(group)

    def sweep(self) -> None:
        if self._stale:
            self._stale = [g for g in self._stale if not _rmdir_tree(g)]

    def close(self) -> None:
        try:
            join(self.origin)
        except OSError:
            pass
        remove_tree(str(self.launch_group))
        self._stale.clear()


Net = ProcessGroupNet


def open_net(batch: str, key: str, token: str) -> ProcessGroupNet:
    """The best net here: a fresh launch group (the runner not yet in it), or the fallback."""
    if os.environ.get(NET_VARIABLE, "auto") == "process-group":
        return ProcessGroupNet(token, f"{NET_VARIABLE}=process-group")
    origin, why = my_cgroup_folder()
    if origin is None:
        return ProcessGroupNet(token, why)
    folder = os.path.join(origin, FOLDER)
    launch_group = os.path.join(folder, f"{batch}.{key}.{token}")
    try:
        os.makedirs(folder, exist_ok=True)
        os.mkdir(launch_group)
    except OSError as e:
        return ProcessGroupNet(token, f"cannot create a cgroup in {origin}: {e.strerror}")
    if not os.path.exists(os.path.join(launch_group, "cgroup.kill")):
        os.rmdir(launch_group)
        return ProcessGroupNet(token, "this kernel's cgroups have no cgroup.kill (Linux 5.14+)")
    return CgroupNet(token, origin, launch_group)


def enter(net: ProcessGroupNet) -> ProcessGroupNet:
    """Move the runner into its launch group; if the system refuses, fall back."""
    if not isinstance(net, CgroupNet):
        return net
    try:
        join(str(net.launch_group))
    except OSError as e:
        remove_tree(str(net.launch_group))
        return ProcessGroupNet(net.token, f"cannot move into {net.launch_group}: {e.strerror}")
    return net


def empty_leftovers(batch: str, key: str, records: list[dict], keep: str | None) -> int:
    """Empty what dead launches of this batch left: their cgroups, their token's processes.

    `records` come from the batch's lock file (where each launch noted its net, wherever it
    ran); the launch folders of this batch under this runner's own cgroup are found too.
    Returns how many groups or processes were found.
    """
    from overnight.sentinel import kill_token_holders

    found = 0
    groups = {r["cgroup"] for r in records if r.get("cgroup")}
    origin, _ = my_cgroup_folder()
    if origin is not None and os.environ.get(NET_VARIABLE, "auto") != "process-group":
        folder = os.path.join(origin, FOLDER)
        try:
            groups |= {e.path for e in os.scandir(folder) if e.name.startswith(f"{batch}.{key}.")}
        except OSError:
            pass
    for group in groups - {keep}:
        if os.path.isdir(group):
            found += populated(group)
            remove_tree(group)
    for token in {r["token"] for r in records if r.get("token")}:
        found += kill_token_holders(token)
    return found
