"""Import a batch module from a file path or a dotted module name, and validate it."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from overnight.batch import Batch, Step
from overnight.errors import DefinitionError, shown


@dataclass
class LoadedBatch:
    batch: Batch
    path: Path             # the module's file
    order: list[Step]      # steps in a dependency order


def looks_like_path(ref: str) -> bool:
    return ref.endswith(".py") or "/" in ref


def load_batch(ref: str, base_dir: Path) -> LoadedBatch:
    """Load and validate the batch in `ref` (a path, or a dotted module name).

    Every problem becomes one DefinitionError line naming the file (and line and step
    where known); nothing is run.
    """
    if looks_like_path(ref):
        path = (base_dir / ref).resolve()
        if not path.is_file():
            raise DefinitionError(f"{shown(ref, quote=False)}: no such batch module file")
        module = _import_file(path)
    else:
        module, path = _import_dotted(ref, base_dir)
    batch = _find_batch(module, path)
    try:
        order = batch.validate()
    except DefinitionError as e:
        raise DefinitionError(f"{_short(path)}: {e}") from None
    _LOADED.pop((ref, str(base_dir)), None)
    _LOADED[(ref, str(base_dir))] = batch
    return LoadedBatch(batch=batch, path=path, order=order)


# The latest batch this process loaded from each (ref, base folder), so that a template
# process (template.py) can import the same batch again.
_LOADED: dict[tuple[str, str], Batch] = {}


def source_of(steps: dict[str, Step]) -> tuple[str, str] | None:
    """The (ref, base folder) of the loaded batch whose steps these very ones are, if any."""
    for source, batch in reversed(_LOADED.items()):
        if all(batch.steps.get(name) is step for name, step in steps.items()):
            return source
    return None


def _import_file(path: Path):  # noqa: ANN202 - a module
    name = f"overnight_batch_{path.stem.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise DefinitionError(f"{_short(path)}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    # The module's own folder first, so helpers beside it import as they would in a script.
    sys.path.insert(0, str(path.parent))
    sys.modules[name] = module
    _execute(lambda: spec.loader.exec_module(module), path)  # type: ignore[union-attr]
    return module


def _import_dotted(ref: str, base_dir: Path):  # noqa: ANN202
    if str(base_dir) not in sys.path:
        sys.path.insert(0, str(base_dir))
    try:
        spec = importlib.util.find_spec(ref)
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin is None:
        raise DefinitionError(
            f"{shown(ref, quote=False)}: no batch module of that name (looked in {base_dir})"
        )
    path = Path(spec.origin)
    module = _execute(lambda: importlib.import_module(ref), path)
    return module, path


def _execute(load, path: Path):  # noqa: ANN001, ANN202
    try:
        return load()
    except DefinitionError as e:
        raise DefinitionError(f"{_where(path, e)}: {e}") from None
    except SyntaxError as e:
        where = f"{_short(Path(e.filename))}:{e.lineno}" if e.filename else _short(path)
        raise DefinitionError(f"{where}: syntax error: {e.msg}") from None
    except BaseException as e:  # noqa: BLE001 - any failure of user code at import
        if isinstance(e, KeyboardInterrupt):
            raise
        raise DefinitionError(
            f"{_where(path, e)}: import failed: {type(e).__name__}: {_one_line(e)}"
        ) from None


def _find_batch(module, path: Path) -> Batch:  # noqa: ANN001
    found = getattr(module, "batch", None)
    if isinstance(found, Batch):
        return found
    batches = [v for v in vars(module).values() if isinstance(v, Batch)]
    if len(batches) == 1:
        return batches[0]
    if not batches:
        raise DefinitionError(
            f"{_short(path)}: defines no batch (expected `batch = Batch(\"name\")`)"
        )
    raise DefinitionError(f"{_short(path)}: defines several batches; name one `batch`")


def _where(path: Path, error: BaseException) -> str:
    """`file:line` of the deepest frame of the batch module in the error's traceback."""
    line = None
    for frame in traceback.extract_tb(error.__traceback__):
        if Path(frame.filename).resolve() == path:
            line = frame.lineno
    return f"{_short(path)}:{line}" if line else _short(path)


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else ""


def _short(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
