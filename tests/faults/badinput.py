"""The bad-input corpus: broken batch modules, configs, dates, zones, durations, command
lines and names, hostile ones included. test_fault_bad_input.py runs each through the
real CLI; the same list writes docs/bad-input.md, so the table and the tests never differ.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from datetime import UTC, datetime

GOOD_CONFIG = """\
[overnight]
state_dir = ".overnight"
timezone = "UTC"

[batches.good]
module = "good.py"
"""

GOOD_BATCH = """\
from overnight import Batch

batch = Batch("good")
batch.command("first", "true")


@batch.step
def second(ctx):
    pass
"""


@dataclass
class Case:
    id: str                      # what is broken, as the test id says it
    args: list[str]              # the overnight command line
    show: str                    # the broken input, for the docs table
    files: dict[str, str | bytes] = field(default_factory=dict)   # written over the good project
    env: dict[str, str] = field(default_factory=dict)


def batch_case(id: str, body: str, show: str | None = None, args: list[str] | None = None) -> Case:
    """A case where good.py declares `body` after `batch = Batch("good")`."""
    source = f'from overnight import Batch\n\nbatch = Batch("good")\n{body}\n'
    return Case(id, args or ["run", "good"], show or body.strip(), files={"good.py": source})


def module_case(id: str, source: str, show: str | None = None) -> Case:
    return Case(id, ["run", "good"], show or source.strip(), files={"good.py": source})


def config_case(id: str, toml: str, show: str | None = None, args: list[str] | None = None) -> Case:
    return Case(id, args or ["run", "good"], show or toml.strip(), files={"overnight.toml": toml})


def extra_config(id: str, lines: str, args: list[str] | None = None) -> Case:
    """GOOD_CONFIG with `lines` added at the end (so inside [batches.good])."""
    return config_case(id, GOOD_CONFIG + lines + "\n", lines.strip(), args)


LONG = "a" * 10_000

CASES: list[Case] = [
    # -- batch modules that do not load -----------------------------------------------
    module_case("module-syntax-error", 'from overnight import Batch\nbatch = Batch("good"\n'),
    module_case("module-imports-missing-package", "import no_such_package_xyz\n"),
    module_case(
        "module-raises-multiline-error",
        'raise RuntimeError("first line\\nsecond line\\nthird line")\n',
    ),
    module_case("module-calls-sys-exit", "import sys\nsys.exit(5)\n"),
    module_case("module-defines-no-batch", "x = 1\n"),
    module_case(
        "module-defines-two-batches",
        'from overnight import Batch\na = Batch("good")\nb = Batch("other")\n',
    ),
    batch_case("batch-has-no-steps", "", show='batch = Batch("good")  # and nothing else'),
    Case(
        "batch-name-mismatch-with-config", ["run", "good"],
        '[batches.good] names a module with Batch("other")',
        files={"good.py": 'from overnight import Batch\nbatch = Batch("other")\nbatch.command("a", "1")\n'},
    ),
    module_case(
        "batch-name-with-space", 'from overnight import Batch\nbatch = Batch("my batch")\n'
    ),
    # -- the step graph ---------------------------------------------------------------
    batch_case("cycle", 'batch.command("a", "true", after=["b"])\nbatch.command("b", "true", after=["a"])'),
    batch_case("unknown-prerequisite", 'batch.command("a", "true", after=["nope"])'),
    batch_case("step-after-itself", 'batch.command("a", "true", after=["a"])'),
    batch_case("duplicate-step-name", 'batch.command("a", "true")\nbatch.command("a", "false")'),
    batch_case(
        "nested-parallel-groups",
        'with batch.parallel():\n    with batch.parallel():\n        batch.command("a", "true")',
    ),
    batch_case("after-is-a-number", 'batch.command("a", "true", after=5)'),
    # -- names ------------------------------------------------------------------------
    batch_case("step-name-uppercase", 'batch.command("Export", "true")'),
    batch_case("step-name-dot-dot-slash", 'batch.command("../../etc/passwd", "true")'),
    batch_case("step-name-leading-dot", 'batch.command(".hidden", "true")'),
    batch_case("step-name-10000-chars", f'batch.command("{LONG}", "true")',
               show='batch.command("aaaa…(10,000 a)", "true")'),
    batch_case("step-name-control-chars", 'batch.command("a\\x1b[31mred\\x07", "true")'),
    batch_case("step-name-newline", 'batch.command("first\\nsecond", "true")'),
    batch_case("step-name-nul", 'batch.command("a\\x00b", "true")'),
    batch_case("step-name-empty", 'batch.command("", "true")'),
    batch_case("step-name-not-a-string", 'batch.command(42, "true")'),
    batch_case("step-name-unicode-lookalike", 'batch.command("ехport", "true")  # Cyrillic е, х'),
    # -- commands and options ---------------------------------------------------------
    batch_case("command-empty-string", 'batch.command("a", "   ")'),
    batch_case("command-empty-list", 'batch.command("a", [])'),
    batch_case("command-not-text", 'batch.command("a", 42)'),
    batch_case("unknown-option", 'batch.command("a", "true", tmeout="1m")'),
    batch_case("adopt-if-not-callable", 'batch.command("a", "true", adopt_if=True)'),
    batch_case("cron-days-bad-rule",
               'from overnight.batch import cron_days\nbatch.command("a", "true", when=cron_days("* * 9"))'),
    batch_case("timeout-not-a-duration", 'batch.command("a", "true", timeout="ten minutes")'),
    batch_case("timeout-negative", 'batch.command("a", "true", timeout=-5)'),
    batch_case("timeout-zero", 'batch.command("a", "true", timeout="0s")'),
    batch_case("timeout-nan", 'batch.command("a", "true", timeout=float("nan"))'),
    batch_case("timeout-infinite", 'batch.command("a", "true", timeout="inf")'),
    batch_case("retries-negative", 'batch.command("a", "true", retries=-1)'),
    batch_case("retries-a-string", 'batch.command("a", "true", retries="3")'),
    batch_case("retries-true", 'batch.command("a", "true", retries=True)'),
    batch_case("retry-delay-not-a-duration", 'batch.command("a", "true", retry_delay="soon")'),
    batch_case("env-value-not-a-string", 'batch.command("a", "true", env={"N": 1})'),
    batch_case("when-not-a-function", 'batch.command("a", "true", when=True)'),
    batch_case("idempotent-not-a-bool", 'batch.command("a", "true", idempotent="no")'),
    batch_case("cwd-not-a-string", 'batch.command("a", "true", cwd=5)'),
    batch_case("priority-not-a-number", 'batch.command("a", "true", priority="high")'),
    batch_case("priority-out-of-range", 'batch.command("a", "true", priority=10**9)'),
    batch_case("run-if-unknown", 'batch.command("a", "true", run_if="sometimes")'),
    batch_case("resources-a-list", 'batch.command("a", "true", resources=["pos_db"])'),
    batch_case("resources-zero-units", 'batch.command("a", "true", resources={"pos_db": 0})'),
    batch_case("resource-not-in-config", 'batch.command("a", "true", resources={"pos_db": 1})'),
    Case("resource-above-capacity", ["run", "good"],
         '[resources] pos_db = 1, and resources={"pos_db": 2}',
         files={"overnight.toml": GOOD_CONFIG + "\n[resources]\npos_db = 1\n",
                "good.py": 'from overnight import Batch\nbatch = Batch("good")\n'
                           'batch.command("a", "true", resources={"pos_db": 2})\n'}),
    batch_case("wait-every-zero", 'batch.wait("w", check="true", every=0)'),
    batch_case("wait-on-timeout-unknown", 'batch.wait("w", check="true", on_timeout="retry")'),
    batch_case("wait-check-not-a-command", 'batch.wait("w", check=42)'),
    batch_case("wait-with-retries", 'batch.wait("w", check="true", retries=3)'),
    # -- what loading let through and the night then crashed on (issue 13, defect 5) -----
    batch_case("env-value-nul", 'batch.command("a", "true", env={"N": "a\\x00b"})'),
    batch_case("env-name-nul", 'batch.command("a", "true", env={"N\\x00M": "1"})'),
    batch_case("env-name-with-equals", 'batch.command("a", "true", env={"A=B": "1"})'),
    batch_case("env-name-empty", 'batch.command("a", "true", env={"": "1"})'),
    batch_case("env-nul-in-a-python-step", '@batch.step(env={"N": "\\x00"})\ndef a(ctx):\n    pass'),
    batch_case("command-string-nul", 'batch.command("a", "echo a\\x00b")'),
    batch_case("command-argv-nul", 'batch.command("a", ["echo", "a\\x00b"])'),
    batch_case("cwd-nul", 'batch.command("a", "true", cwd="out\\x00")'),
    batch_case("timeout-25-days", 'batch.command("a", "true", timeout="25d")'),
    batch_case("timeout-a-trillion-seconds", 'batch.command("a", "true", timeout=1e12)'),
    batch_case("retry-delay-30-days", 'batch.command("a", "true", retries=1, retry_delay="30d")'),
    batch_case("retries-a-billion", 'batch.command("a", "true", retries=10**9)'),
    # -- configuration ----------------------------------------------------------------
    config_case("config-not-toml", "[overnight\nstate_dir = .overnight\n"),
    config_case("config-unknown-section", GOOD_CONFIG + "[overnite]\nx = 1\n", "[overnite]"),
    config_case(
        "config-unknown-key", GOOD_CONFIG.replace("state_dir", "statedir"), 'statedir = ".overnight"'
    ),
    config_case("timezone-unknown", GOOD_CONFIG.replace('"UTC"', '"Mars/Olympus_Mons"'),
                'timezone = "Mars/Olympus_Mons"'),
    config_case("timezone-path-traversal", GOOD_CONFIG.replace('"UTC"', '"../../../etc/passwd"'),
                'timezone = "../../../etc/passwd"'),
    config_case("timezone-nul", GOOD_CONFIG.replace('"UTC"', '"UTC\\u0000"'), 'timezone = "UTC\\u0000"'),
    config_case("timezone-not-a-string", GOOD_CONFIG.replace('"UTC"', "5"), "timezone = 5"),
    config_case("workers-zero", GOOD_CONFIG.replace('"UTC"\n', '"UTC"\nworkers = 0\n'), "workers = 0"),
    config_case("workers-a-string", GOOD_CONFIG.replace('"UTC"\n', '"UTC"\nworkers = "3"\n'),
                'workers = "3"'),
    config_case("batch-without-module", GOOD_CONFIG.replace('module = "good.py"', 'mail = "never"'),
                '[batches.good] with no module'),
    config_case("batch-module-missing", GOOD_CONFIG.replace('"good.py"', '"missing.py"'),
                'module = "missing.py"'),
    config_case("batch-module-dotted-missing", GOOD_CONFIG.replace('"good.py"', '"no.such.module"'),
                'module = "no.such.module"'),
    config_case("batch-name-invalid-in-config", GOOD_CONFIG.replace("[batches.good]", '[batches."Bad Name"]'),
                '[batches."Bad Name"]', args=["run", "good"]),
    config_case("state-dir-nul", GOOD_CONFIG.replace('".overnight"', '".over\\u0000night"'),
                'state_dir = ".over\\u0000night"'),
    config_case("module-path-nul", GOOD_CONFIG.replace('"good.py"', '"good.py\\u0000"'),
                'module = "good.py\\u0000"'),
    config_case("module-name-escape-sequence", GOOD_CONFIG.replace('"good.py"', '"go\\u001b[2Jod"'),
                'module = "go\\u001b[2Jod"'),
    # -- schedules (checked by every command, not only the scheduler's) -----------------
    extra_config("schedule-minute-out-of-range", 'schedule = "61 * * * *"'),
    extra_config("schedule-three-fields", 'schedule = "* * *"'),
    extra_config("schedule-unknown-alias", 'schedule = "@sometimes"'),
    extra_config("schedule-never-fires", 'schedule = "0 1 31 2 *"'),
    extra_config("schedule-bad-weekday-range", 'schedule = "0 1 * * MON-XYZ"'),
    extra_config("schedule-not-a-string", "schedule = 5"),
    extra_config("schedule-in-next", 'schedule = "0 25 * * *"', args=["next"]),
    extra_config("dst-repeat-unknown", 'schedule = "30 1 * * *"\ndst_repeat = "both"'),
    extra_config("scheduler-now-not-an-instant", 'schedule = "0 1 * * *"',
                 args=["scheduler", "--once", "--now", "garbage"]),
    extra_config("next-after-without-offset", 'schedule = "0 1 * * *"',
                 args=["next", "--after", "2026-11-01T01:30:00"]),
    extra_config("scheduler-now-without-once", 'schedule = "0 1 * * *"',
                 args=["scheduler", "--now", "2026-11-01T01:00:00+00:00"]),
    extra_config("next-unknown-batch", 'schedule = "0 1 * * *"', args=["next", "nope"]),
    # More than once a day: each fire after the first would find its date done.
    extra_config("schedule-every-half-hour", 'schedule = "*/30 * * * *"'),
    extra_config("schedule-hourly", 'schedule = "@hourly"'),
    extra_config("schedule-twice-a-day", 'schedule = "0 1,13 * * *"'),
    extra_config("schedule-twice-a-day-for-today", 'schedule = "0,30 1 * * *"\ndate = "today"'),
    extra_config("overlap-unknown", 'overlap = "sometimes"'),
    # Simulated time that would hijack real nights.
    extra_config("scheduler-now-in-the-future", 'schedule = "0 1 * * *"',
                 args=["scheduler", "--once", "--now", "2999-01-01T01:00:00+00:00"]),
    extra_config("scheduler-dry-run-without-once", 'schedule = "0 1 * * *"', args=["scheduler", "--dry-run"]),
    extra_config("cron-machine-zone-unknown", 'schedule = "0 1 * * *"',
                 args=["cron", "--machine-zone", "Mars/Olympus"]),
    extra_config("after-unknown-batch", 'after = ["nope"]'),
    extra_config("after-itself", 'after = ["good"]'),
    extra_config("after-not-a-list", 'after = "all"'),
    extra_config("after-cycle", 'after = ["other"]\n[batches.other]\nmodule = "good.py"\nafter = ["good"]'),
    extra_config("wait-up-to-not-a-duration", 'wait_up_to = "forever"'),
    extra_config("mail-policy-unknown", 'mail = "sometimes"'),
    extra_config("catchup-unknown", 'catchup = "maybe"'),
    extra_config("catchup-window-not-a-duration", 'catchup_window = "forever"'),
    extra_config("dst-gap-unknown", 'dst_gap = "jump"'),
    extra_config("run-date-unknown", 'date = "tomorrow"'),
    extra_config("mail-to-not-an-address", 'mail_to = ["it-department"]'),
    config_case("webhook-not-http", GOOD_CONFIG + '[[webhooks]]\nurl = "ftp://example.com/x"\n',
                '[[webhooks]] url = "ftp://example.com/x"'),
    # -- deadlines, heartbeats and metrics ---------------------------------------------
    extra_config("deadline-not-a-time", 'deadline = "banana"'),
    extra_config("deadline-hour-25", 'deadline = "25:00"'),
    extra_config("deadline-with-offset", 'deadline = "06:00+01:00"'),
    extra_config("deadline-not-a-string", "deadline = 6"),
    extra_config("deadline-in-status", 'deadline = "6h"', args=["status"]),
    extra_config("ping-url-without-scheme", 'ping_url = "hc-ping.com/0b1c"'),
    extra_config("ping-url-with-space", 'ping_url = "https://hc-ping.com/0b1c 2"'),
    extra_config("ping-url-bad-port", 'ping_url = "https://hc-ping.com:port/0b1c"'),
    extra_config("ping-url-no-host", 'ping_url = "https:///0b1c"'),
    config_case("metrics-textfile-not-prom", GOOD_CONFIG + '[metrics]\ntextfile = "overnight.txt"\n',
                '[metrics] textfile = "overnight.txt"'),
    config_case("metrics-textfile-a-folder", GOOD_CONFIG + '[metrics]\ntextfile = ".overnight/logs/"\n',
                '[metrics] textfile = ".overnight/logs/"'),
    config_case("metrics-unknown-key", GOOD_CONFIG + '[metrics]\nport = 9100\n', "[metrics] port = 9100"),
    config_case("celery-without-broker", GOOD_CONFIG + "[celery]\n", "[celery] with no broker"),
    config_case("resources-zero", GOOD_CONFIG + "[resources]\npos_db = 0\n", "[resources] pos_db = 0"),
    config_case("resources-not-a-number", GOOD_CONFIG + '[resources]\npos_db = "one"\n',
                '[resources] pos_db = "one"'),
    config_case("resources-bad-name", GOOD_CONFIG + '[resources]\n"POS DB" = 1\n',
                '[resources] "POS DB" = 1'),
    # -- the command line -------------------------------------------------------------
    Case("date-not-a-date", ["run", "good", "--date", "2026-13-45"], "--date 2026-13-45"),
    Case("date-with-shell", ["run", "good", "--date", "yesterday; rm -rf /"], "--date 'yesterday; rm -rf /'"),
    Case("date-10000-chars", ["run", "good", "--date", LONG], "--date aaaa…(10,000 a)"),
    Case("workers-zero-on-cli", ["run", "good", "--workers", "0"], "--workers 0"),
    Case("workers-not-a-number", ["run", "good", "--workers", "many"], "--workers many"),
    Case("unknown-option-on-cli", ["run", "good", "--frobnicate"], "--frobnicate"),
    Case("unknown-command", ["runn", "good"], "overnight runn good"),
    Case("missing-batch-argument", ["run"], "overnight run"),
    Case("unknown-batch", ["run", "nope"], "overnight run nope"),
    Case("batch-path-traversal", ["run", "../../../etc/passwd"], "overnight run ../../../etc/passwd"),
    Case("batch-name-10000-chars", ["run", LONG], "overnight run aaaa…(10,000 a)"),
    Case("batch-name-control-chars", ["run", "go\x1b[2Jod"], "overnight run $'go\\e[2Jod'"),
    Case("batch-name-newline", ["status", "good\nbad"], "overnight status $'good\\nbad'"),
    Case("extra-argument-without-rerun", ["run", "good", "first"], "overnight run good first"),
    Case("rerun-without-steps", ["run", "good", "--rerun"], "overnight run good --rerun"),
    Case("rerun-unknown-step", ["run", "good", "--rerun", "nope"], "--rerun nope"),
    Case("rerun-step-path-traversal", ["run", "good", "--rerun", "../first"], "--rerun ../first"),
    Case("rerun-with-fresh", ["run", "good", "--rerun", "first", "--fresh"], "--rerun first --fresh"),
    Case("downstream-without-rerun", ["run", "good", "--downstream"], "--downstream"),
    Case("mark-without-action", ["mark", "good", "first"], "overnight mark good first"),
    Case("mark-unknown-step", ["mark", "good", "nope", "--done"], "overnight mark good nope --done"),
    Case("logs-unknown-step", ["logs", "good", "nope"], "overnight logs good nope"),
    Case("mark-date-that-never-ran", ["mark", "good", "first", "--done", "--date", "2026-10-01"],
         "overnight mark good first --done --date 2026-10-01"),
    Case("mark-step-near-miss", ["mark", "good", "frist", "--done", "--date", "2026-11-01"],
         "overnight mark good frist --done"),
    Case("logs-attempt-not-a-number", ["logs", "good", "first", "--attempt", "x"], "--attempt x"),
    Case("status-date-not-a-date", ["status", "good", "--date", "31/12/2026"], "--date 31/12/2026"),
    Case("backfill-from-after-to", ["backfill", "good", "--from", "2026-02-10", "--to", "2026-02-01"],
         "--from 2026-02-10 --to 2026-02-01"),
    Case("backfill-impossible-date", ["backfill", "good", "--from", "2026-02-30", "--to", "2026-03-01"],
         "--from 2026-02-30"),
    Case("backfill-missing-to", ["backfill", "good", "--from", "2026-01-01"], "--from 2026-01-01 (no --to)"),
    Case("backfill-range-too-long", ["backfill", "good", "--from", "1900-01-01", "--to", "2026-01-01"],
         "--from 1900-01-01 --to 2026-01-01"),
    Case("report-date-without-run", ["report", "good", "--date", "1999-01-01"],
         "overnight report good --date 1999-01-01"),
    Case("mail-run-without-command", ["mail-run", "-s", "x"], "overnight mail-run -s x"),
    Case("mail-run-without-subject", ["mail-run", "--", "true"], "overnight mail-run -- true"),
    Case("mail-run-without-mail-config", ["mail-run", "-s", "x", "--", "true"],
         "overnight mail-run -s x -- true (no [mail] in overnight.toml)"),
    Case("batch-name-invalid-utf8", ["run", "go\udcffod"], "overnight run $'go\\xffod' (not UTF-8)"),
    Case("date-invalid-utf8", ["run", "good", "--date", "\udcff"], "--date $'\\xff' (not UTF-8)"),
    Case("config-not-utf8", ["run", "good"], 'mail = "\\xff" (a byte that is not UTF-8)',
         files={"overnight.toml": GOOD_CONFIG.encode() + b'mail = "\xff"\n'}),
    Case("config-option-missing-file", ["--config", "nope.toml", "status"], "--config nope.toml"),
    # A date after today: most likely a typo, and its run would make the real night a no-op.
    Case("run-date-after-today", ["run", "good", "--date", "2999-01-01"], "--date 2999-01-01"),
    Case("mark-date-after-today", ["mark", "good", "first", "--done", "--date", "2999-01-01"],
         "--date 2999-01-01"),
    Case("backfill-to-after-today", ["backfill", "good", "--from", "2998-12-30", "--to", "2999-01-01"],
         "--to 2999-01-01"),
    Case("mark-without-date-and-no-run", ["mark", "other", "first", "--done"],
         "overnight mark other first --done (no run of other yet)",
         files={"other.py": GOOD_BATCH.replace('"good"', '"other"'),
                "overnight.toml": GOOD_CONFIG + '\n[batches.other]\nmodule = "other.py"\n'}),
    Case("config-env-missing-file", ["status"], "OVERNIGHT_CONFIG=nope.toml",
         env={"OVERNIGHT_CONFIG": "nope.toml"}),
    # -- prune, import, init ---------------------------------------------------------
    Case("prune-age-in-seconds", ["prune", "--older-than", "400"], "overnight prune --older-than 400"),
    Case("prune-age-not-a-duration", ["prune", "--older-than", "a year"], "--older-than 'a year'"),
    Case("prune-without-an-age", ["prune"], "overnight prune (no [retention] either)"),
    config_case("retention-less-than-a-day", GOOD_CONFIG + '[retention]\nkeep = "12h"\n',
                '[retention] keep = "12h"'),
    config_case("retention-unknown-key", GOOD_CONFIG + '[retention]\nkeep_days = 400\n',
                "[retention] keep_days = 400"),
    Case("import-crontab-missing-file", ["import", "crontab", "nope.txt"],
         "overnight import crontab nope.txt"),
    Case("import-crontab-nothing-nightly", ["import", "crontab", "cron.txt"], "*/5 * * * * poll",
         files={"cron.txt": "*/5 * * * * /usr/bin/poll\n"}),
    Case("import-crontab-would-overwrite", ["import", "crontab", "cron.txt"],
         "0 1 * * * x (overnight.toml exists)", files={"cron.txt": "0 1 * * * /usr/bin/x\n"}),
    Case("import-luigi-no-task", ["import", "luigi", "eod"], "overnight import luigi eod"),
    Case("import-luigi-no-module", ["import", "luigi", "no_such_module_xyz:Night"],
         "overnight import luigi no_such_module_xyz:Night"),
    Case("import-luigi-other-parameter", ["import", "luigi", "eod:Night"],
         "class Night(luigi.Task): store = luigi.Parameter()",
         files={"eod.py": "import luigi\nclass Night(luigi.Task):\n    store = luigi.Parameter()\n"
                          "    def run(self): pass\n"}),
    Case("init-would-overwrite", ["init"], "overnight init (overnight.toml exists)"),
]


def normalise(message: str, root: str) -> str:
    """The message as the docs show it: the test's folder becomes `.`, a hostile
    10,000-character value is abbreviated, and the clock's date and time (which the
    refusals of dates after today name) read TODAY and NOW."""
    text = message.replace(root + "/", "").replace(root, ".")
    text = re.sub(r"later than the clock \([^)]*\)", "later than the clock (NOW)", text)
    text = text.replace(f"after today ({datetime.now(tz=UTC).date().isoformat()} ", "after today (TODAY ")
    return text.replace(LONG, "aaaa…(10,000 a)")


def markdown(messages: dict[str, str]) -> str:
    lines = [
        "# Bad input: what overnight says",
        "",
        "Generated from tests/faults/badinput.py by tests/faults/test_fault_bad_input.py",
        "(`OVERNIGHT_UPDATE_DOCS=1 pytest tests/faults/test_fault_bad_input.py` rewrites it).",
        "Each case runs through the real command line; each exits with code 2, prints this",
        "one line on stderr and nothing else, and leaves the ledger as it was.",
        "",
        "| case | what is broken | command | message |",
        "|---|---|---|---|",
    ]
    for case in CASES:
        command = " ".join(["overnight", *(shlex.quote(a) for a in case.args)])
        command = (f"OVERNIGHT_CONFIG={case.env['OVERNIGHT_CONFIG']} " if case.env else "") + command
        command = command.replace(LONG, "aaaa…(10,000 a)")
        lines.append(
            f"| {case.id} | {_cell(case.show)} | {_cell(command)} | {_cell(messages[case.id])} |"
        )
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    text = text.replace("|", "\\|").replace("\n", "⏎")
    text = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
    return f"`{text}`" if "`" not in text else text
