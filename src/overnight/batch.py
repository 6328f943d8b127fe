"""The batch module API: Batch, its steps, and their validation. Pure: no I/O here."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal, NamedTuple, Never, get_args

from overnight.durations import Duration, parse_duration
from overnight.errors import DefinitionError, did_you_mean
from overnight.limits import check_command, check_duration, check_env, check_retries, check_text
from overnight.waits import OnTimeout, WaitSpec, callable_check, check_kind, wait_spec

# Lowercase letters, digits, '.', '_' and '-', starting with a letter or digit: safe as a
# file name (no '/', no '..', no leading dot) and in a shell word.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]*")
MAX_NAME_LENGTH = 100
MAX_PRIORITY = 1_000_000

# Only these placeholders are filled in; any other brace (awk '{print $1}') is left alone.
PLACEHOLDER = re.compile(r"\{(date|batch)(?::([^{}]*))?\}")

# After which ends of its prerequisites a step runs (the rule: planner.RUN_IF).
RunIf = Literal["success", "always", "failure"]

_INHERIT: Any = object()  # `after` not given: follow the step declared just before


@dataclass
class Context:
    """What a callable step receives."""

    date: date
    batch: str
    step: str
    attempt: int
    run_id: int
    log: logging.Logger


@dataclass
class Step:
    """One unit of work in a batch."""

    name: str
    batch: str
    command: str | tuple[str, ...] | None = None
    func: Callable[[Context], Any] | None = None
    after: tuple[str, ...] = ()
    timeout: float | None = None
    retries: int = 0
    retry_delay: float = 0.0
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    when: Callable[[date], bool] | None = None
    idempotent: bool = True
    leave_running: bool = False   # what it leaves running when it exits is not killed
    queue: str | None = None
    priority: int = 0           # higher starts first among ready steps, before the critical path
    run_if: RunIf = "success"   # after which ends of its prerequisites it runs (planner.RUN_IF)
    resources: dict[str, int] = field(default_factory=dict)  # units of [resources] pools it holds
    wait: WaitSpec | None = None  # a wait step: its command or func is the check
    adopt_if: Callable[[date], bool] | None = None  # true: its work for the date was done before overnight
    position: int = 0

    @property
    def kind(self) -> str:
        if self.wait is not None:
            return "wait"
        return "command" if self.command is not None else "callable"

    def render_command(self, run_date: date) -> str | list[str]:
        """The command with {date}, {date:FORMAT} and {batch} filled in."""

        def fill(text: str) -> str:
            return PLACEHOLDER.sub(lambda m: _placeholder(m, run_date, self.batch), text)

        if isinstance(self.command, str):
            return fill(self.command)
        assert self.command is not None
        return [fill(part) for part in self.command]

    def describe(self) -> str:
        if isinstance(self.command, str):
            return self.command
        if self.command is not None:
            return " ".join(self.command)
        assert self.func is not None
        return f"{self.func.__module__}.{self.func.__qualname__}()"


# What after= accepts: a step, its name or its function, a list of them; None or [] for none.
StepRef = Step | str | Callable[..., Any]
After = StepRef | Iterable[StepRef] | None


def _placeholder(match: re.Match[str], run_date: date, batch: str) -> str:
    what, spec = match.group(1), match.group(2)
    if what == "batch":
        return batch
    return run_date.strftime(spec) if spec else run_date.isoformat()


def check_name(name: object, what: str = "step") -> str:
    """Return `name` if it is a valid step or batch name, else raise DefinitionError."""
    if not isinstance(name, str):
        raise DefinitionError(f"{what} name must be a string, not {type(name).__name__}")
    if len(name) > MAX_NAME_LENGTH:
        raise DefinitionError(
            f"{what} name {name[:20]!r}... is {len(name)} characters long "
            f"(at most {MAX_NAME_LENGTH})"
        )
    if not NAME_PATTERN.fullmatch(name):
        raise DefinitionError(
            f"{what} name {name!r} is not valid: use lowercase letters, digits, '.', '_' "
            "and '-', starting with a letter or digit"
        )
    return name


class Batch:
    """A named set of steps, declared in order in a Python module.

    A step with no ``after=`` runs after the step declared just before it; ``after=[]``
    lets it start at once. Inside ``with batch.parallel():`` every step depends on what came
    before the group, and what follows the group depends on all of it.
    """

    def __init__(
        self, name: str, description: str = "", *, timezone: str | None = None
    ) -> None:
        self.name = check_name(name, "batch")
        self.description = description
        self.timezone = timezone
        self.steps: dict[str, Step] = {}
        self._frontier: tuple[str, ...] = ()   # what the next default step runs after
        self._group: list[str] | None = None   # members of the open parallel() group
        self._group_base: tuple[str, ...] = ()
        self._funcs: dict[int, str] = {}       # id(function) -> step name, for after=[fn]

    # -- declaring steps --------------------------------------------------------------

    def command(
        self,
        name: str,
        command: str | Sequence[str],
        *,
        after: After = _INHERIT,
        timeout: Duration | None = None,
        retries: int = 0,
        retry_delay: Duration = 0,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        when: Callable[[date], bool] | None = None,
        idempotent: bool = True,
        leave_running: bool = False,
        queue: str | None = None,
        priority: int = 0,
        run_if: RunIf = "success",
        resources: Mapping[str, int] | None = None,
        adopt_if: Callable[[date], bool] | None = None,
        **unknown: Never,
    ) -> Step:
        """Add a shell command (a string, run by /bin/sh -c) or an argv list (no shell).

        Options: `timeout` and `retry_delay` are durations ("20m", "1h30m", or seconds);
        `retries` more attempts after a failure; `env` added to the environment; `cwd`
        relative to the config's folder; `when` a predicate on the date (false: skipped);
        `idempotent=False`: after an unclean end it waits for an operator;
        `leave_running=True`: what it leaves running when it exits (a daemon it restarts) is
        not killed; `queue` sends
        it to a remote worker; `priority` (a whole number, default 0): among the steps
        ready at once, a higher one starts first, whatever the critical path says;
        `run_if`: "success" (the default) runs it once its prerequisites are done,
        "always" once they have ended however they ended, "failure" only when one of them
        did not succeed (a cleanup); `resources`: units of the [resources] pools of
        overnight.toml it holds while it runs, e.g. {"pos_db": 1}; `adopt_if`: a
        function of the date, true when the step's work for that date was done before
        overnight ran it (Luigi's output exists): the first time its turn comes on that date,
        it is recorded adopted, not run (adoption.py).
        """
        options = _Options(
            timeout, retries, retry_delay, env, cwd, when, idempotent, leave_running, queue, priority,
            run_if, resources, adopt_if,
        )
        check_name(name)
        if isinstance(command, str):
            if not command.strip():
                raise DefinitionError(f"step {name!r}: the command is empty")
            cmd: str | tuple[str, ...] = command
        elif isinstance(command, Sequence) and command and all(
            isinstance(part, str) for part in command
        ):
            cmd = tuple(command)
        else:
            raise DefinitionError(
                f"step {name!r}: command must be a string or a non-empty list of strings"
            )
        check_command(cmd, f"step {name!r}: the command")
        return self._add(Step(name=name, batch=self.name, command=cmd), after, options, unknown)

    def step(
        self,
        func: Callable[[Context], Any] | None = None,
        *,
        name: str | None = None,
        after: After = _INHERIT,
        timeout: Duration | None = None,
        retries: int = 0,
        retry_delay: Duration = 0,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        when: Callable[[date], bool] | None = None,
        idempotent: bool = True,
        leave_running: bool = False,
        queue: str | None = None,
        priority: int = 0,
        run_if: RunIf = "success",
        resources: Mapping[str, int] | None = None,
        adopt_if: Callable[[date], bool] | None = None,
        **unknown: Never,
    ) -> Any:
        """Decorator adding a Python callable step: ``@batch.step`` or ``@batch.step(...)``.

        The function takes a Context; raising an exception fails the step. The step is named
        after the function (underscores become dashes) unless ``name=`` says otherwise.
        The options are those of `command`.
        """
        options = _Options(
            timeout, retries, retry_delay, env, cwd, when, idempotent, leave_running, queue, priority,
            run_if, resources, adopt_if,
        )

        def register(fn: Callable[[Context], Any]) -> Callable[[Context], Any]:
            if not callable(fn):
                raise DefinitionError(f"@{self.name}.step needs a function")
            step_name = name if name is not None else fn.__name__.replace("_", "-")
            check_name(step_name)
            self._add(Step(name=step_name, batch=self.name, func=fn), after, options, unknown)
            self._funcs[id(fn)] = step_name
            return fn

        if func is not None:
            return register(func)
        return register

    def wait(
        self,
        name: str,
        *,
        check: str | Sequence[str] | Callable[[Context], Any],
        every: Duration = "30s",
        timeout: Duration = "2h",
        initial_delay: Duration | None = None,
        on_timeout: OnTimeout = "fail",
        after: After = _INHERIT,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        when: Callable[[date], bool] | None = None,
        priority: int = 0,
        run_if: RunIf = "success",
        adopt_if: Callable[[date], bool] | None = None,
        **unknown: Never,
    ) -> Step:
        """Add a step that waits for a condition outside the night: `check` (a command, or a
        function of the context returning true when ready) runs every `every` until it
        succeeds, then the step succeeds; after `timeout` it is timed_out, or skipped with
        `on_timeout="skip"` (what follows then runs). `initial_delay`: before the first
        check. No worker is held while it waits; each check's output goes to its log.
        """
        where = f"step {name!r}"
        check_name(name)
        spec = wait_spec(where, every, timeout, initial_delay, on_timeout)
        options = _Options(
            spec.timeout, 0, 0, env, cwd, when, True, False, None, priority, run_if, None, adopt_if,
        )
        checked = check_kind(where, check)
        step = Step(name=name, batch=self.name, wait=spec)
        if callable(checked):
            step.func = callable_check(checked)
        else:
            check_command(checked, f"{where}: the check")
            step.command = checked
        return self._add(step, after, options, unknown, _WAIT_OPTIONS)

    @contextmanager
    def parallel(self) -> Iterator[None]:
        """Steps declared inside may run side by side."""
        if self._group is not None:
            raise DefinitionError("parallel() groups cannot be nested; use after= instead")
        self._group, self._group_base = [], self._frontier
        try:
            yield
        finally:
            members, self._group = self._group, None
        if members:
            self._frontier = tuple(members)

    def _add(
        self, step: Step, after: Any, options: _Options, unknown: dict[str, Any],
        valid: Sequence[str] = (),
    ) -> Step:
        if step.name in self.steps:
            raise DefinitionError(f"step {step.name!r}: duplicate step name")
        if unknown:
            option = next(iter(unknown))
            valid = (*(valid or _Options._fields), "after")
            raise DefinitionError(
                f"step {step.name!r}: unknown option {option}={did_you_mean(option, valid)} "
                f"(valid: {', '.join(valid)})"
            )
        _apply_options(step, options)
        if after is _INHERIT:
            step.after = self._group_base if self._group is not None else self._frontier
        else:
            step.after = self._resolve_after(step.name, after)
        step.position = len(self.steps)
        self.steps[step.name] = step
        if self._group is not None:
            self._group.append(step.name)
        else:
            self._frontier = (step.name,)
        return step

    def _resolve_after(self, name: str, after: Any) -> tuple[str, ...]:
        if after is None:
            return ()
        items = [after] if isinstance(after, (str, Step)) or callable(after) else after
        try:
            items = list(items)
        except TypeError:
            raise DefinitionError(
                f"step {name!r}: after= must be a step, a name or a list of them"
            ) from None
        names: list[str] = []
        for item in items:
            if isinstance(item, Step):
                names.append(item.name)
            elif isinstance(item, str):
                names.append(item)
            elif callable(item) and id(item) in self._funcs:
                names.append(self._funcs[id(item)])
            else:
                raise DefinitionError(
                    f"step {name!r}: after= contains {item!r}, which is not a step of "
                    f"batch {self.name!r}"
                )
        return tuple(dict.fromkeys(names))

    # -- validation ---------------------------------------------------------------------

    def validate(self) -> list[Step]:
        """Check the whole graph; return the steps in a dependency order.

        Raises DefinitionError naming the step for an unknown prerequisite or a cycle.
        """
        if not self.steps:
            raise DefinitionError(f"batch {self.name!r} has no steps")
        for step in self.steps.values():
            for prereq in step.after:
                if prereq not in self.steps:
                    raise DefinitionError(
                        f"step {step.name!r}: after= names {prereq!r}, which is not a step "
                        f"of batch {self.name!r}{did_you_mean(prereq, self.steps)}"
                    )
                if prereq == step.name:
                    raise DefinitionError(f"step {step.name!r}: it cannot run after itself")
        order = topological_order(self.steps)
        if len(order) < len(self.steps):
            raise DefinitionError(f"steps form a cycle: {' -> '.join(_find_cycle(self.steps))}")
        return order

    def dependents(self) -> dict[str, list[str]]:
        return dependents_of(self.steps.values())


def dependents_of(steps: Iterable[Step]) -> dict[str, list[str]]:
    """Per step, the steps that name it in after=, in declaration order."""
    out: dict[str, list[str]] = {}
    for step in steps:
        out.setdefault(step.name, [])
        for prereq in step.after:
            out.setdefault(prereq, []).append(step.name)
    return out


def with_downstream(names: list[str], dependents: dict[str, list[str]]) -> list[str]:
    """`names` and everything that depends on them, directly or not; `names` first."""
    chosen = list(dict.fromkeys(names))
    seen = set(chosen)
    stack = list(chosen)
    while stack:
        for dep in dependents[stack.pop()]:
            if dep not in seen:
                seen.add(dep)
                chosen.append(dep)
                stack.append(dep)
    return chosen


def topological_order(steps: dict[str, Step]) -> list[Step]:
    """Kahn's algorithm, ties broken by declaration order. Leaves out steps in a cycle."""
    import heapq

    waiting = {name: len(step.after) for name, step in steps.items()}
    dependents: dict[str, list[str]] = {name: [] for name in steps}
    for step in steps.values():
        for prereq in step.after:
            if prereq in dependents:
                dependents[prereq].append(step.name)
    ready = [(s.position, s.name) for s in steps.values() if not s.after]
    heapq.heapify(ready)
    order: list[Step] = []
    while ready:
        _, name = heapq.heappop(ready)
        order.append(steps[name])
        for dep in dependents[name]:
            waiting[dep] -= 1
            if waiting[dep] == 0:
                heapq.heappush(ready, (steps[dep].position, dep))
    return order


def _find_cycle(steps: dict[str, Step]) -> list[str]:
    """One cycle, as a list of names ending where it started."""
    color: dict[str, int] = {}
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        color[name] = 1
        path.append(name)
        for prereq in steps[name].after:
            if color.get(prereq) == 1:
                cycle = path[path.index(prereq):] + [prereq]
                return list(reversed(cycle))
            if prereq not in color:
                found = visit(prereq)
                if found:
                    return found
        path.pop()
        color[name] = 2
        return None

    for name in steps:
        if name not in color:
            found = visit(name)
            if found:
                return found
    return []


class _Options(NamedTuple):
    """A step's options as its author gave them (checked by _apply_options)."""

    timeout: object
    retries: object
    retry_delay: object
    env: object
    cwd: object
    when: object
    idempotent: object
    leave_running: object
    queue: object
    priority: object
    run_if: object
    resources: object
    adopt_if: object


_WAIT_OPTIONS = ("check", "every", "timeout", "initial_delay", "on_timeout", "env", "cwd", "when",
                 "priority", "run_if", "adopt_if")


def _apply_options(step: Step, options: _Options) -> None:
    """Check every option (the annotations are for editors; a batch module may say
    anything) and set it on the step, or raise DefinitionError naming the step."""
    where = f"step {step.name!r}"
    (timeout, retries, retry_delay, env, cwd, when, idempotent, leave_running, queue, priority, run_if,
     resources, adopt) = options
    if timeout is not None:
        step.timeout = parse_duration(timeout, f"{where}: timeout")
        if step.timeout <= 0:
            raise DefinitionError(f"{where}: timeout must be more than zero")
        check_duration(step.timeout, f"{where}: timeout")
    step.retry_delay = check_duration(
        parse_duration(retry_delay, f"{where}: retry_delay"), f"{where}: retry_delay")
    step.retries = check_retries(retries, where)
    if env is not None:
        if not isinstance(env, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise DefinitionError(f"{where}: env must be a dict of strings to strings")
        step.env = check_env(dict(env), where)
    if cwd is not None and not isinstance(cwd, str):
        raise DefinitionError(f"{where}: cwd must be a path string")
    step.cwd = cwd if cwd is None else check_text(cwd, f"{where}: cwd")
    if when is not None and not callable(when):
        raise DefinitionError(f"{where}: when= must be a function of the date")
    step.when = when  # type: ignore[assignment]
    if not isinstance(idempotent, bool):
        raise DefinitionError(f"{where}: idempotent must be True or False")
    step.idempotent = idempotent
    if not isinstance(leave_running, bool):
        raise DefinitionError(f"{where}: leave_running must be True or False")
    step.leave_running = leave_running
    if queue is not None:
        check_name(queue, "queue")
    step.queue = queue  # type: ignore[assignment]
    if isinstance(priority, bool) or not isinstance(priority, int) or abs(priority) > MAX_PRIORITY:
        raise DefinitionError(
            f"{where}: priority must be a whole number from {-MAX_PRIORITY} to {MAX_PRIORITY}"
        )
    step.priority = priority
    if run_if not in get_args(RunIf):
        raise DefinitionError(f"{where}: run_if = {run_if!r} is not one of {', '.join(get_args(RunIf))}")
    step.run_if = run_if  # type: ignore[assignment]
    step.resources = _resources(where, resources)
    if adopt is not None and not callable(adopt):
        raise DefinitionError(f"{where}: adopt_if= must be a function of the date")
    step.adopt_if = adopt  # type: ignore[assignment]


def _resources(where: str, resources: object) -> dict[str, int]:
    if resources is None:
        return {}
    if not isinstance(resources, Mapping):
        raise DefinitionError(
            f'{where}: resources must be a dict of pool names to units, e.g. {{"pos_db": 1}}'
        )
    out: dict[str, int] = {}
    for name, count in resources.items():
        try:
            check_name(name, "resource")
        except DefinitionError as e:
            raise DefinitionError(f"{where}: {e}") from None
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise DefinitionError(f"{where}: resources[{name!r}] must be a whole number of at least 1")
        out[name] = count
    return out


def cron_days(rule: str, *, next_day: bool = False) -> Callable[[date], bool]:
    """A ready-made ``when=``: the days a crontab day rule ("* * 1-5") matches (days.py).
    Imported when used: every command imports this module."""
    from overnight.days import cron_days as matching

    return matching(rule, next_day=next_day)


def weekdays(day: date) -> bool:
    """A ready-made ``when=``: Monday to Friday."""
    return day.weekday() < 5
