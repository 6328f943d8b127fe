"""overnight.toml -> typed settings, validated whole before anything runs.

Each setting's default is stated once, on its dataclass field, and each choice list once,
as the Literal type of its field: the readers below leave out what the file does not set,
so the dataclass fills it in.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from overnight.batch import check_name
from overnight.durations import parse_duration
from overnight.errors import ConfigError, DefinitionError, did_you_mean
from overnight.statefolder import StateFolder

CONFIG_NAME = "overnight.toml"
DEFAULT_STATE_DIR = ".overnight"

MailWhen = Literal["always", "failure", "never"]
Catchup = Literal["latest", "none", "all"]
DstGap = Literal["shift", "skip"]
DstRepeat = Literal["first", "last"]
RunDate = Literal["yesterday", "today"]
Overlap = Literal["queue", "skip"]
Security = Literal["none", "starttls", "tls"]
HookWhen = Literal["always", "failure"]


@dataclass
class BatchConfig:
    name: str
    module: str
    schedule: str | None = None
    timezone: str | None = None        # None: the [overnight] default
    mail: MailWhen = "failure"
    mail_to: list[str] | None = None
    catchup: Catchup = "latest"
    catchup_window: float = 6 * 3600
    dst_gap: DstGap = "shift"
    dst_repeat: DstRepeat = "first"
    run_date: RunDate = "yesterday"
    workers: int | None = None
    deadline: str | None = None        # HH:MM or HH:MM:SS in the batch's zone (checked when read)
    ping_url: str | None = None        # heartbeat: <url>/start, <url>, <url>/fail
    overlap: Overlap = "queue"        # a fire that finds the batch busy: wait for it, or skip
    after: list[str] = field(default_factory=list)  # batches whose run for the date must succeed first
    wait_up_to: float = 6 * 3600       # how long a launch waits for them before it ends blocked


# What a batch gets for each setting its [batches.NAME] table leaves out.
BATCH_DEFAULTS = BatchConfig(name="", module="")


@dataclass
class MailConfig:
    host: str = "localhost"
    port: int = 25
    security: Security = "none"
    user: str | None = None
    password_env: str | None = None
    sender: str = "overnight@localhost"
    to: list[str] = field(default_factory=list)
    timeout: float = 30.0


@dataclass
class WebhookConfig:
    url: str
    when: HookWhen = "failure"
    batches: list[str] | None = None   # None: every batch
    timeout: float = 10.0


@dataclass
class MetricsConfig:
    textfile: Path | None = None       # node_exporter's textfile collector reads it (*.prom)


@dataclass
class CeleryConfig:
    broker: str
    result_backend: str | None = None
    pickup_timeout: float = 600.0


@dataclass
class RetentionConfig:
    keep: float  # seconds: the scheduler prunes what is older, once a day (prune.py)


def _given(**values: Any) -> dict[str, Any]:
    """The settings the file gave (readers return None for a key it leaves out)."""
    return {k: v for k, v in values.items() if v is not None}


@dataclass
class Config:
    path: Path | None                  # None: no overnight.toml, defaults only
    base_dir: Path                     # where relative paths and steps start from
    state_dir: Path
    path_given: bool = False           # named by --config or OVERNIGHT_CONFIG (not found in the folder)
    timezone: str | None = None        # None: the machine's local zone
    workers: int = 1
    batches: dict[str, BatchConfig] = field(default_factory=dict)
    mail: MailConfig | None = None
    webhooks: list[WebhookConfig] = field(default_factory=list)
    celery: CeleryConfig | None = None
    retention: RetentionConfig | None = None
    metrics: MetricsConfig | None = None
    resources: dict[str, int] = field(default_factory=dict)  # pool name -> units, for every batch

    def zone_for(self, batch: str | None) -> ZoneInfo:
        name = None
        if batch and batch in self.batches:
            name = self.batches[batch].timezone
        return load_zone(name or self.timezone)

    def default_date(self, batch: str | None, now: datetime | None = None) -> date:
        """The business date a run is for when none is given: yesterday, in the batch's zone."""
        zone = self.zone_for(batch)
        today = (now or datetime.now(tz=zone)).astimezone(zone).date()
        bc = self.batches.get(batch or "")
        if bc is not None and bc.run_date == "today":
            return today
        return today - timedelta(days=1)

    @property
    def state(self) -> StateFolder:
        return StateFolder(self.state_dir)


def load_zone(name: str | None) -> ZoneInfo:
    if name is None:
        tz = os.environ.get("TZ")
        if tz:
            name = tz.lstrip(":")
        else:
            try:
                with open("/etc/localtime", "rb") as f:
                    return ZoneInfo.from_file(f, key="localtime")
            except OSError:
                return ZoneInfo("UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError(f"unknown time zone {name!r} (use an IANA name like America/Chicago)") from None


def find_config_path(explicit: str | None) -> Path | None:
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"{explicit}: no such configuration file")
        return path.resolve()
    env = os.environ.get("OVERNIGHT_CONFIG")
    if env:
        path = Path(env)
        if not path.is_file():
            raise ConfigError(f"{env} (from OVERNIGHT_CONFIG): no such configuration file")
        return path.resolve()
    return find_upwards(Path.cwd())


def find_upwards(folder: Path) -> Path | None:
    """The overnight.toml of `folder` or of the nearest folder above it, as git finds its
    repository: a command typed in a project's subfolder (its scripts, its logs) uses the
    project's configuration rather than none."""
    for candidate in (folder, *folder.parents):
        path = candidate / CONFIG_NAME
        if path.is_file():
            return path
    return None


def load_config(explicit: str | None = None) -> Config:
    path = find_config_path(explicit)
    if path is None:
        cwd = Path.cwd()
        return Config(path=None, base_dir=cwd, state_dir=cwd / DEFAULT_STATE_DIR)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot be read: {e}") from None
    config = parse_config(data, path)
    config.path_given = bool(explicit or os.environ.get("OVERNIGHT_CONFIG"))
    return config


def parse_config(data: dict[str, Any], path: Path) -> Config:
    where = str(path)
    _only(data, ("overnight", "batches", "mail", "webhooks", "celery", "web", "resources", "metrics",
                 "retention"), where)
    base_dir = path.parent
    top = _table(data, "overnight", where)
    _only(top, ("state_dir", "timezone", "workers"), f"{where}: [overnight]")
    state_dir = Path(_str(top, "state_dir", f"{where}: [overnight]") or DEFAULT_STATE_DIR)
    config = Config(
        path=path,
        base_dir=base_dir,
        state_dir=state_dir if state_dir.is_absolute() else base_dir / state_dir,
        timezone=_zone_name(top, f"{where}: [overnight]"),
        **_given(workers=_int(top, "workers", f"{where}: [overnight]", minimum=1)),
    )
    for name, table in _table(data, "batches", where).items():
        config.batches[name] = _batch(name, table, where)
    config.resources = _resources(_table(data, "resources", where), f"{where}: [resources]")
    if any(bc.after for bc in config.batches.values()):
        _check_after(config.batches, where)
    if "mail" in data:
        config.mail = _mail(_table(data, "mail", where), f"{where}: [mail]")
    hooks = data.get("webhooks", [])
    if not isinstance(hooks, list):
        raise ConfigError(f"{where}: webhooks must be an array of tables ([[webhooks]])")
    config.webhooks = [_webhook(h, f"{where}: [[webhooks]] #{i + 1}") for i, h in enumerate(hooks)]
    if "celery" in data:
        table = _table(data, "celery", where)
        w = f"{where}: [celery]"
        _only(table, ("broker", "result_backend", "pickup_timeout"), w)
        broker = _str(table, "broker", w)
        if not broker:
            raise ConfigError(f"{w}: broker is required, e.g. broker = \"redis://localhost:6379/0\"")
        config.celery = CeleryConfig(
            broker=broker,
            result_backend=_str(table, "result_backend", w),
            **_given(pickup_timeout=_duration(table, "pickup_timeout", w)),
        )
    if "metrics" in data:
        config.metrics = _metrics(_table(data, "metrics", where), f"{where}: [metrics]", base_dir)
    if "retention" in data:
        config.retention = _retention(_table(data, "retention", where), f"{where}: [retention]")
    if any(bc.schedule is not None for bc in config.batches.values()):
        # A typo in a schedule must show in whatever command comes first, not only when the
        # daemon is next restarted (and then refuses to start, and no night runs).
        from overnight.scheduling.schedules import schedules

        schedules(config)
    return config


def _batch(name: str, table: Any, where: str) -> BatchConfig:
    w = f"{where}: [batches.{name}]"
    try:
        check_name(name, "batch")
    except DefinitionError as e:
        raise ConfigError(f"{where}: {e}") from None
    if not isinstance(table, dict):
        raise ConfigError(f"{w}: must be a table")
    _only(
        table,
        ("module", "schedule", "timezone", "mail", "mail_to", "catchup", "catchup_window",
         "dst_gap", "dst_repeat", "date", "workers", "deadline", "ping_url", "overlap", "after",
         "wait_up_to"),
        w,
    )
    module = _str(table, "module", w)
    if not module:
        raise ConfigError(f"{w}: module is required, e.g. module = \"overnight/{name}.py\"")
    return BatchConfig(name=name, module=module, **_given(
        schedule=_str(table, "schedule", w),
        timezone=_zone_name(table, w),
        mail=_choice(table, "mail", w, MailWhen),
        mail_to=_addresses(table, "mail_to", w),
        catchup=_choice(table, "catchup", w, Catchup),
        catchup_window=_duration(table, "catchup_window", w),
        dst_gap=_choice(table, "dst_gap", w, DstGap),
        dst_repeat=_choice(table, "dst_repeat", w, DstRepeat),
        run_date=_choice(table, "date", w, RunDate),
        workers=_int(table, "workers", w, minimum=1),
        deadline=_deadline(table, w),
        ping_url=_url(table, "ping_url", w),
        overlap=_choice(table, "overlap", w, Overlap),
        after=_names(table, "after", w),
        wait_up_to=_duration(table, "wait_up_to", w),
    ))


def _names(table: dict[str, Any], key: str, where: str) -> list[str] | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f'{where}: {key} must be a list of batch names, e.g. {key} = ["all"]')
    return value


def _check_after(batches: dict[str, BatchConfig], where: str) -> None:
    """Every batch named in after= is one of ours, and no batch waits for itself through others."""
    for bc in batches.values():
        for other in bc.after:
            if other not in batches or other == bc.name:
                what = "itself" if other == bc.name else f"{other!r}, which is not a batch of this file"
                raise ConfigError(f"{where}: [batches.{bc.name}]: after names {what}")
    from overnight.batchafter import find_cycle

    cycle = find_cycle({name: bc.after for name, bc in batches.items() if bc.after})
    if cycle:
        raise ConfigError(
            f"{where}: [batches] after= makes a cycle, each waiting for the next: {' -> '.join(cycle)}"
        )


def _resources(table: dict[str, Any], w: str) -> dict[str, int]:
    """[resources]: each pool's name and how many steps may hold it at once."""
    pools: dict[str, int] = {}
    for name in table:
        try:
            check_name(name, "resource")
        except DefinitionError as e:
            raise ConfigError(f"{w}: {e}") from None
        pools[name] = _int(table, name, w, minimum=1)  # type: ignore[assignment]
    return pools


def _retention(table: dict[str, Any], w: str) -> RetentionConfig:
    _only(table, ("keep",), w)
    keep = _duration(table, "keep", w)
    if keep is None:
        raise ConfigError(f'{w}: keep is required, e.g. keep = "400d"')
    if keep < 86400:
        raise ConfigError(f"{w}: keep = {table['keep']!r} is less than a day; e.g. keep = \"400d\"")
    return RetentionConfig(keep)


def _mail(table: dict[str, Any], w: str) -> MailConfig:
    _only(table, ("host", "port", "security", "user", "password_env", "from", "to", "timeout"), w)
    return MailConfig(**_given(
        host=_str(table, "host", w) or None,  # an empty host or sender: the default
        port=_int(table, "port", w, minimum=1),
        security=_choice(table, "security", w, Security),
        user=_str(table, "user", w),
        password_env=_str(table, "password_env", w),
        sender=_str(table, "from", w) or None,
        to=_addresses(table, "to", w),
        timeout=_duration(table, "timeout", w),
    ))


def _deadline(table: dict[str, Any], w: str) -> str | None:
    from overnight.scheduling.deadlines import parse_wall_time

    text = _str(table, "deadline", w)
    if text is not None and parse_wall_time(text) is None:
        raise ConfigError(
            f"{w}: deadline = {text!r} is not a time of day: write HH:MM or HH:MM:SS in the "
            'batch\'s time zone, e.g. deadline = "06:00"'
        )
    return text


def _url(table: dict[str, Any], key: str, w: str) -> str | None:
    url = _str(table, key, w)
    if url is None:
        return None
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or any(
        c.isspace() for c in url
    ):
        raise ConfigError(f"{w}: {key} = {url!r} is not an http:// or https:// address")
    return url


def _metrics(table: dict[str, Any], w: str, base_dir: Path) -> MetricsConfig:
    _only(table, ("textfile",), w)
    text = _str(table, "textfile", w)
    if text is None:
        return MetricsConfig()
    path = Path(text) if Path(text).is_absolute() else base_dir / text
    if not text.strip() or path.suffix != ".prom" or path.is_dir():
        raise ConfigError(
            f"{w}: textfile = {text!r} must name a file ending in .prom (node_exporter's textfile "
            'collector reads only those), e.g. textfile = "/var/lib/node_exporter/overnight.prom"'
        )
    import importlib.util

    if importlib.util.find_spec("prometheus_client") is None:
        raise ConfigError(f"{w}: writing metrics needs prometheus_client: pip install 'overnight[metrics]'")
    return MetricsConfig(textfile=path)


def _webhook(table: Any, w: str) -> WebhookConfig:
    if not isinstance(table, dict):
        raise ConfigError(f"{w}: must be a table")
    _only(table, ("url", "when", "batches", "timeout"), w)
    url = _str(table, "url", w)
    if not url or not url.startswith(("http://", "https://")):
        raise ConfigError(f"{w}: url must be an http:// or https:// address")
    batches = table.get("batches")
    if batches is not None and (
        not isinstance(batches, list) or not all(isinstance(b, str) for b in batches)
    ):
        raise ConfigError(f"{w}: batches must be a list of batch names")
    return WebhookConfig(url=url, batches=batches, **_given(
        when=_choice(table, "when", w, HookWhen),
        timeout=_duration(table, "timeout", w),
    ))


# -- small typed readers, each naming the key in its message ---------------------------


def _only(table: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(
                f"{where}: unknown key {key!r}{did_you_mean(key, allowed)} (valid: {', '.join(allowed)})"
            )


def _table(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: [{key}] must be a table")
    return value


def _str(table: dict[str, Any], key: str, where: str) -> str | None:
    value = table.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{where}: {key} must be a string, not {value!r}")
    if value is not None and "\0" in value:
        # TOML allows "\u0000"; no path, name or address can hold it (os calls raise).
        raise ConfigError(f"{where}: {key} = {value!r} contains a NUL character")
    return value


def _int(table: dict[str, Any], key: str, where: str, minimum: int = 0) -> int | None:
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where}: {key} must be a whole number of at least {minimum}")
    return value


def _choice(table: dict[str, Any], key: str, where: str, kind: Any) -> Any:
    """The value of `key`, one of the strings of the Literal type `kind`."""
    if key not in table:
        return None
    value, choices = table[key], get_args(kind)
    if value not in choices:
        raise ConfigError(f"{where}: {key} = {value!r} is not one of {', '.join(choices)}")
    return value


def _duration(table: dict[str, Any], key: str, where: str) -> float | None:
    if key not in table:
        return None
    try:
        return parse_duration(table[key], f"{where}: {key}")
    except DefinitionError as e:
        raise ConfigError(str(e)) from None


def _addresses(table: dict[str, Any], key: str, where: str) -> list[str] | None:
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and "@" in v for v in value):
        raise ConfigError(f"{where}: {key} must be a list of email addresses")
    return value


def _zone_name(table: dict[str, Any], where: str) -> str | None:
    name = _str(table, "timezone", where)
    if name is not None:
        try:
            load_zone(name)
        except ConfigError as e:
            raise ConfigError(f"{where}: timezone: {e}") from None
    return name
