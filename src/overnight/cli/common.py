"""What every command shares: the configuration, BATCH and --date arguments, the ledger."""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from collections.abc import Iterable

    from overnight.config import Config
    from overnight.ledger import Ledger, RunRow


def get_config(ctx: click.Context) -> Config:
    if "config" not in ctx.obj:
        from overnight.config import load_config

        config = ctx.obj["config"] = load_config(ctx.obj["config_path"])
        if config.path is not None and not config.path_given and config.base_dir != _cwd():
            # Found above this folder: say which, or a command typed in the wrong project's
            # subfolder would act on that project without a word.
            click.echo(f"overnight: using {config.path}", err=True)
    return ctx.obj["config"]


def _cwd():  # noqa: ANN202 - a Path
    from pathlib import Path

    try:
        return Path.cwd().resolve()
    except OSError:
        return None


def complete_batch(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Shell completion of BATCH: the batches of the overnight.toml in use."""
    from overnight.config import load_config
    from overnight.errors import OvernightError

    try:
        config = load_config((ctx.find_root().params or {}).get("config_path"))
    except OvernightError:
        return []
    return [name for name in sorted(config.batches) if name.startswith(incomplete)]


def parse_date(value: str | None, config: Config, batch: str | None) -> date:
    """A --date value (YYYY-MM-DD, today, yesterday), or the batch's default date."""
    from overnight.errors import ConfigError

    default = config.default_date(batch)
    if value is None:
        return default
    text = value.strip().lower()
    if text in ("today", "yesterday"):
        today = datetime.now(tz=config.zone_for(batch)).date()
        return today if text == "today" else today - timedelta(days=1)
    try:
        return date.fromisoformat(value)
    except ValueError as e:
        from overnight.errors import shown

        detail = f" ({e})" if value not in str(e) else ""  # not the value a second time
        raise ConfigError(
            f"--date {shown(value, quote=False)}: not a valid date{detail}; use YYYY-MM-DD"
        ) from None


def refuse_future(day: date, config: Config, batch: str | None, allow: bool, option: str = "--date") -> None:
    """A date after today in the batch's zone is most likely a typo (2027 for 2026): its
    run would be recorded, and its real night would then find every step done."""
    if allow:
        return
    from overnight.errors import ConfigError

    zone = config.zone_for(batch)
    today = datetime.now(tz=zone).date()
    if day > today:
        raise ConfigError(
            f"{option} {day}: after today ({today} in {zone.key}): that night has not come yet; "
            "add --allow-future if you mean it"
        )


class BatchRef:
    """What a BATCH argument names: its ledger name and, when loadable, its module."""

    def __init__(self, config: Config, ref: str) -> None:
        from overnight.config import BatchConfig
        from overnight.errors import DefinitionError, shown
        from overnight.loader import looks_like_path

        self.config = config
        self.settings: BatchConfig | None = config.batches.get(ref)
        if self.settings is not None:
            self.name = ref
            self.module_ref = self.settings.module
            self.base_dir = config.base_dir
        elif looks_like_path(ref):
            path = os.path.abspath(ref)
            if not os.path.isfile(path):
                raise DefinitionError(f"{shown(ref, quote=False)}: no such batch module file")
            self.name = ""  # known once loaded
            self.module_ref = path
            self.base_dir = config.base_dir
        else:
            self.name = ref
            self.module_ref = None
            self.base_dir = config.base_dir
        self.ref = ref

    def load(self):  # noqa: ANN201 - a LoadedBatch
        from overnight.errors import DefinitionError, shown
        from overnight.loader import load_batch

        if self.module_ref is None:
            from overnight.errors import did_you_mean

            known = ", ".join(sorted(self.config.batches)) or "none"
            where = self.config.path or "no overnight.toml here"
            raise DefinitionError(
                f"unknown batch {shown(self.ref)}{did_you_mean(self.ref, self.config.batches)}: "
                f"not in {where} (known: {known}) and not a path to a batch module"
            )
        loaded = load_batch(self.module_ref, self.base_dir)
        if self.settings is not None and loaded.batch.name != self.name:
            raise DefinitionError(
                f"{loaded.path}: the module defines Batch({loaded.batch.name!r}) but "
                f"{self.config.path} calls it {self.name!r}; make them the same"
            )
        self.name = loaded.batch.name
        return loaded

    def check_steps(self, loaded, names: Iterable[str], option: str = "") -> None:  # noqa: ANN001
        """Each of `names` is a step of the loaded batch, or one line naming the first that is not."""
        from overnight.errors import ConfigError, did_you_mean, shown

        for name in names:
            if name in loaded.batch.steps:
                continue
            guess = did_you_mean(name, loaded.batch.steps)
            if option:
                raise ConfigError(f"{option} {shown(name, quote=False)}: batch {self.name!r} "
                                  f"has no step of that name{guess}")
            raise ConfigError(f"batch {self.name!r} has no step {shown(name)}{guess}")

    @property
    def argument(self) -> str:
        """How a command names this batch again: BATCH as the command line takes it."""
        if self.settings is not None or self.module_ref is None:
            return self.name or self.ref
        return self.module_ref  # an absolute path: a batch run by path has no configured name

    def resolve_name(self) -> str:
        """The ledger name, loading the module only when BATCH was a path."""
        if not self.name:
            self.load()
        return self.name

    @property
    def workdir(self):  # noqa: ANN201 - a Path
        from pathlib import Path

        if self.config.path is not None:
            return self.config.base_dir
        return Path(self.module_ref).parent if self.module_ref else self.config.base_dir


def open_ledger(config: Config, *, readonly: bool = False) -> Ledger | None:
    """The ledger, or None when reading and there is none yet."""
    from overnight.ledger import Ledger

    if readonly and not config.state.ledger.exists():
        return None
    return Ledger.open(config.state.ledger, readonly=readonly)


def find_run(ledger: Ledger | None, batch: str, run_date: date | None) -> RunRow:
    from overnight.errors import ConfigError, shown

    run = None
    if ledger is not None:
        run = ledger.find_run(batch, run_date.isoformat()) if run_date else ledger.latest_run(batch)
    if run is None:
        when = f" for {run_date.isoformat()}" if run_date else ""
        raise ConfigError(f"no run of batch {shown(batch)}{when} in the ledger yet")
    return run


def who_am_i() -> str:
    import getpass

    try:
        return os.environ.get("OVERNIGHT_LAUNCHED_BY") or getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"
