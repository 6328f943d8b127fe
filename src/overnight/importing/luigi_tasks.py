"""Reading a Luigi task as a night: the tasks its requires() reach, in Luigi's order.

`walk(module, task_name, sample)` instantiates the task for a sample date, walks
requires() and returns the steps a batch needs: one per task that does work, its
prerequisites from the edges (a wrapper task, which only requires others, is folded
into the edges through it), whether Luigi can say the task is already done for a date
(it has an output, or a complete() of its own: then the step can be adopted), and
whether it is a Rattail `OvernightTask` that waits for datasync after its run.

Only tasks whose one parameter is the date (or that have none) can be steps: a step runs
for the run's date and nothing else. Anything else is refused, naming the task.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import sys
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any

from overnight.errors import DefinitionError, did_you_mean, shown
from overnight.importing.files import as_step_name


@dataclass
class LuigiStep:
    cls: type
    name: str                         # the step's name
    date_param: str | None            # the name of its date parameter (None: it has none)
    after: list[str] = field(default_factory=list)   # step names of its prerequisites
    datasync_minutes: float | None = None            # a Rattail OvernightTask that waits after run()
    adoptable: bool = False           # Luigi can tell it is done (an output, or its own complete())
    where: str = ""                   # file and line of its class

    @property
    def family(self) -> str:
        return self.cls.__name__

    @property
    def wait_name(self) -> str:
        return f"{self.name}.datasync"


@dataclass
class LuigiNight:
    module: ModuleType
    module_name: str                  # how the batch module imports it
    module_folder: Path | None        # a folder to put on sys.path first (a module given by path)
    root: str                         # the task named on the command line
    steps: list[LuigiStep]            # in Luigi's order: every task after what it requires
    folded: list[str]                 # wrapper tasks left out (their edges kept)


def load_module(ref: str, cwd: Path) -> tuple[ModuleType, str, Path | None]:
    """The Luigi module: a dotted name importable from `cwd`, or a path to a .py file."""
    if ref.endswith(".py") or "/" in ref:
        path = (cwd / ref).resolve()
        if not path.is_file():
            raise DefinitionError(f"{shown(ref, quote=False)}: no such Python file")
        name = path.stem
        if not name.isidentifier():
            raise DefinitionError(f"{path}: {name!r} cannot be imported by name (rename the file)")
        sys.path.insert(0, str(path.parent))
        folder = None if path.parent == cwd.resolve() else path.parent
        return _import(name, path), name, folder
    if str(cwd) not in sys.path:
        sys.path.insert(0, str(cwd))
    try:
        spec = importlib.util.find_spec(ref)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise DefinitionError(f"{shown(ref, quote=False)}: no module of that name (looked in {cwd} too)")
    return _import(ref, Path(spec.origin or ref)), ref, None


def _import(name: str, path: Path) -> ModuleType:
    try:
        return importlib.import_module(name)
    except SyntaxError as e:
        raise DefinitionError(f"{e.filename or path}:{e.lineno}: syntax error: {e.msg}") from None
    except Exception as e:  # noqa: BLE001 - any failure of the user's module at import
        raise DefinitionError(f"{path}: import failed: {type(e).__name__}: {_first_line(e)}") from None


def walk(
    module: ModuleType, module_name: str, folder: Path | None, task_name: str, sample: date,
) -> LuigiNight:
    import luigi
    from luigi.task import flatten

    cls = getattr(module, task_name, None)
    if not (isinstance(cls, type) and issubclass(cls, luigi.Task)):
        tasks = [n for n, v in vars(module).items() if isinstance(v, type) and issubclass(v, luigi.Task)
                 and v.__module__ == module.__name__]
        raise DefinitionError(
            f"{module_name}: no Luigi task named {shown(task_name)}{did_you_mean(task_name, tasks)} "
            f"(its tasks: {', '.join(sorted(tasks)) or 'none'})"
        )
    root = _instance(cls, sample)
    order, requires = _in_luigi_order(root, sample, flatten)
    wrappers = {t.task_id for t in order if _is_wrapper(t, luigi)}
    names: dict[str, str] = {}
    taken: set[str] = set()
    steps: list[LuigiStep] = []
    for task in order:
        if task.task_id in wrappers:
            continue
        made = type(task)
        name = as_step_name(kebab(made.__name__), taken, "task", limit=60)
        step = LuigiStep(cls=made, name=name, date_param=_date_param(made), where=_where(made))
        step.after = [names[t] for t in _through_wrappers(requires[task.task_id], requires, wrappers)]
        step.adoptable = _can_tell_done(task, luigi)
        minutes = getattr(task, "datasync_wait_minutes", None)
        if minutes and callable(getattr(task, "datasync_wait", None)):
            step.datasync_minutes = float(minutes)
        names[task.task_id] = step.wait_name if step.datasync_minutes else step.name
        steps.append(step)
    if not steps:
        raise DefinitionError(f"{module_name}:{task_name} and what it requires do no work of their own")
    folded = [type(t).__name__ for t in order if t.task_id in wrappers]
    return LuigiNight(module, module_name, folder, task_name, steps, folded)


def _in_luigi_order(root: Any, sample: date, flatten: Any) -> tuple[list[Any], dict[str, list[Any]]]:
    """Every task `root` requires, directly or not, each after what it requires (the order
    Luigi's worker schedules them in: depth first, in the order requires() lists them)."""
    order: list[Any] = []
    requires: dict[str, list[Any]] = {}
    done: set[str] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    on_path: set[str] = set()
    while stack:
        task, expanded = stack.pop()
        if expanded:
            on_path.discard(task.task_id)
            if task.task_id not in done:
                done.add(task.task_id)
                order.append(task)
            continue
        if task.task_id in done:
            continue
        if task.task_id in on_path:
            raise DefinitionError(f"{type(task).__name__} requires itself, through what it requires")
        on_path.add(task.task_id)
        deps = _requirements(task, sample, flatten)
        requires[task.task_id] = deps
        stack.append((task, True))
        stack.extend((dep, False) for dep in reversed(deps) if dep.task_id not in done)
    return order, requires


def _requirements(task: Any, sample: date, flatten: Any) -> list[Any]:
    import luigi

    try:
        deps = flatten(task.requires())
    except Exception as e:  # noqa: BLE001 - the user's requires() failed
        raise DefinitionError(
            f"{type(task).__name__}.requires() failed: {type(e).__name__}: {_first_line(e)}"
        ) from None
    for dep in deps:
        if not isinstance(dep, luigi.Task):
            raise DefinitionError(
                f"{type(task).__name__}.requires() returns {dep!r}, which is not a Luigi task"
            )
        _check_params(type(dep))
        param = _date_param(type(dep))
        if param is not None and getattr(dep, param) != sample:
            raise DefinitionError(
                f"{type(task).__name__} requires {type(dep).__name__} for {getattr(dep, param)}, not for "
                "its own date: a step runs for its run's date alone (make it a batch of its own, "
                "or drop that requirement)"
            )
    return deps


def _instance(cls: type, sample: date) -> Any:
    _check_params(cls)
    param = _date_param(cls)
    try:
        return cls(**({param: sample} if param else {}))
    except Exception as e:  # noqa: BLE001 - the user's task refused to be made
        raise DefinitionError(
            f"{cls.__name__}({sample}) cannot be made: {type(e).__name__}: {_first_line(e)}"
        ) from None


def _check_params(cls: Any) -> None:
    import luigi

    params = cls.get_params()
    others = [name for name, p in params if not isinstance(p, luigi.DateParameter)]
    dates = [name for name, p in params if isinstance(p, luigi.DateParameter)]
    if others:
        raise DefinitionError(
            f"{cls.__name__} ({_where(cls)}) has a parameter {others[0]!r} besides the date: a step runs "
            f"for the run's date alone, so nothing could say what {others[0]} should be"
        )
    if len(dates) > 1:
        raise DefinitionError(
            f"{cls.__name__} ({_where(cls)}) has two dates ({', '.join(dates)}): which is the run's?"
        )


def _date_param(cls: Any) -> str | None:
    import luigi

    return next((name for name, p in cls.get_params() if isinstance(p, luigi.DateParameter)), None)


def _is_wrapper(task: Any, luigi: Any) -> bool:
    """A task that does no work of its own: it only requires others."""
    return isinstance(task, luigi.WrapperTask) or type(task).run is luigi.Task.run


def _through_wrappers(deps: list[Any], requires: dict[str, list[Any]], wrappers: set[str]) -> list[str]:
    """The task ids of the real tasks `deps` stand for (a wrapper stands for its own)."""
    out: list[str] = []
    for dep in deps:
        if dep.task_id in wrappers:
            out += _through_wrappers(requires[dep.task_id], requires, wrappers)
        else:
            out.append(dep.task_id)
    return list(dict.fromkeys(out))


def _can_tell_done(task: Any, luigi: Any) -> bool:
    """Luigi can say whether it is done for a date: it names outputs, or decides itself."""
    if type(task).complete is not luigi.Task.complete:
        return True
    try:
        return bool(luigi.task.flatten(task.output()))
    except Exception:  # noqa: BLE001 - an output() that fails for the sample date
        return False


def kebab(family: str) -> str:
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1-\2", family)
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1-\2", text)
    return as_step_name(text, set(), "task", limit=60)


def _where(cls: Any) -> str:
    try:
        path = Path(inspect.getsourcefile(cls) or "")
        line = inspect.getsourcelines(cls)[1]
    except (OSError, TypeError):
        return cls.__module__
    return f"{path.name}, line {line}"


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else ""
