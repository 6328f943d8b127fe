"""Reading a crontab as nights: which lines run together, in what order, on which days.

Pure: `read_crontab(text)` turns the lines into `CronLine`s and notes what cannot be
translated; `group_nights(lines)` puts the lines of one night into batches. Writing the
files is writer.py's business (`overnight import crontab`, cli/adopt.py).

How lines become batches. Lines that fire once a day at a fixed time are sorted by their
time of day around the clock; a line within GROUP_GAP of the one before it belongs to the
same night, a line further away (a 04:00 backup after a 01:00 end of day) starts a
batch of its own. Each batch is a chain in time order (each line starts when the one
before it has succeeded, not at its minute), its schedule its first line's time. A line
with a narrower day rule than its batch (weekdays only) keeps the rule as its step's
`when=`, about the day cron fired it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from overnight.batch import PLACEHOLDER

GROUP_GAP = 60  # minutes: lines further apart than this are different nights
EVERY_DAY = "* * *"
EVENING = 12 * 60  # a night starting at or after noon is for that day (date = "today")

ALIASES = {
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *",
}
_ENVIRONMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")
_NUMBER = re.compile(r"^\d{1,2}$")


@dataclass(frozen=True)
class CronLine:
    number: int         # its line number in the crontab
    text: str           # the line as it was
    minute: int
    hour: int
    days: str           # "DOM MONTH DOW", e.g. "* * 1-5"
    command: str        # as cron runs it (\\% turned into %)
    zone: str | None    # CRON_TZ in force, if any

    @property
    def at(self) -> int:
        """Minutes after midnight."""
        return self.hour * 60 + self.minute

    @property
    def clock(self) -> str:
        return f"{self.hour:02d}:{self.minute:02d}"


@dataclass
class Crontab:
    lines: list[CronLine] = field(default_factory=list)
    untranslated: list[tuple[int, str, str]] = field(default_factory=list)  # (number, line, why)
    mailto: str | None = None
    environment: list[tuple[int, str]] = field(default_factory=list)        # (number, line)


def read_crontab(text: str) -> Crontab:
    """Every line of a user's crontab (`crontab -l`), translated or said why not."""
    found = Crontab()
    zone: str | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        env = _ENVIRONMENT.match(line)
        if env and not line.startswith(("@", "*")) and not line[0].isdigit():
            name, value = env.group(1), env.group(2).strip().strip("'\"")
            if name == "MAILTO":
                found.mailto = value
            elif name in ("CRON_TZ", "TZ"):
                zone = value or None
            else:
                found.environment.append((number, line))
            continue
        translated = _translate(number, line, zone)
        if isinstance(translated, str):
            found.untranslated.append((number, line, translated))
        else:
            found.lines.append(translated)
    return found


def _translate(number: int, line: str, zone: str | None) -> CronLine | str:
    """The line as a CronLine, or why it cannot be one."""
    if line.startswith("@"):
        alias, _, command = line.partition(" ")
        if alias == "@reboot":
            return "@reboot: runs at start-up, not at a time of night (a systemd unit fits it)"
        if alias == "@hourly":
            return "@hourly runs every hour: overnight runs a batch once per date"
        if alias not in ALIASES:
            return f"{alias}: not a cron schedule"
        fields = ALIASES[alias].split()
    else:
        parts = line.split(None, 5)
        if len(parts) < 6:
            return "not a crontab line (five time fields, then the command)"
        fields, command = parts[:5], parts[5]
    minute, hour, *days = fields
    if not (_NUMBER.match(minute) and _NUMBER.match(hour)):
        return f"runs more than once a day ({minute} {hour}): overnight runs a batch once per date"
    if int(minute) > 59 or int(hour) > 23:
        return f"no such time of day ({hour}:{minute})"
    rule = " ".join(days)
    problem = check_days(rule)
    if problem:
        return problem
    command = command.strip()
    if re.search(r"(?<!\\)%", command):
        return "an unescaped % (cron feeds what follows it to the command's input): not translated"
    if PLACEHOLDER.search(command):
        return "it says {date} or {batch}, which overnight would fill in: not translated"
    if any(0xD800 <= ord(c) <= 0xDFFF for c in command):
        return "not UTF-8 text: not translated"
    return CronLine(number, line, int(minute), int(hour), rule, command.replace("\\%", "%"), zone)


def check_days(rule: str) -> str | None:
    """Why a "DOM MONTH DOW" rule is not valid, or None."""
    from datetime import datetime

    from cronsim import CronSim, CronSimError

    try:
        CronSim(f"0 0 {rule}", datetime(2000, 1, 1))
    except CronSimError as e:
        return f"day rule {rule!r}: {e}"
    return None


@dataclass
class Night:
    """One batch: crontab lines that ran within GROUP_GAP of each other, in time order."""

    lines: list[CronLine]

    @property
    def first(self) -> CronLine:
        return self.lines[0]

    @property
    def name(self) -> str:
        return f"night-{self.first.hour:02d}{self.first.minute:02d}"

    @property
    def days(self) -> str:
        """The schedule's day rule: the lines' own when they all share one, else every day
        (each narrower line keeps its rule as its step's when=)."""
        rules = {line.days for line in self.lines}
        return rules.pop() if len(rules) == 1 else EVERY_DAY

    @property
    def schedule(self) -> str:
        return f"{self.first.minute} {self.first.hour} {self.days}"

    @property
    def for_today(self) -> bool:
        """A night that starts in the evening is for that day; one that starts after
        midnight is for the day before (overnight's default, "yesterday")."""
        return self.first.at >= EVENING

    def fire_day(self, line: CronLine) -> int:
        """How many days after the run's date cron fired `line`."""
        start = 0 if self.for_today else 1
        return start + (1 if line.at < self.first.at else 0)  # past midnight since the start

    @property
    def zone(self) -> str | None:
        zones = {line.zone for line in self.lines}
        return zones.pop() if len(zones) == 1 else None


def group_nights(lines: list[CronLine]) -> list[Night]:
    """The lines as nights (see the module), each in time order, earliest night first.

    Times are on a clock: 23:50 and 00:10 are 20 minutes apart. The round starts after
    the longest quiet stretch of the day, so no night is cut in two at midnight.
    """
    if not lines:
        return []
    ordered = sorted(lines, key=lambda line: (line.at, line.number))
    gaps = [(ordered[i].at - ordered[i - 1].at) % (24 * 60) for i in range(len(ordered))]
    if len(ordered) == 1:
        gaps = [24 * 60]
    start = max(range(len(ordered)), key=lambda i: (gaps[i], -i))
    around = ordered[start:] + ordered[:start]
    nights: list[Night] = []
    for i, line in enumerate(around):
        gap = gaps[(start + i) % len(ordered)]
        zone_changes = bool(nights) and nights[-1].lines[-1].zone != line.zone
        if not nights or i == 0 or gap > GROUP_GAP or zone_changes:
            nights.append(Night([line]))
        else:
            nights[-1].lines.append(line)
    return sorted(nights, key=lambda n: (n.first.at, n.first.number))


_GENERIC = {"cd", "env", "sudo", "nice", "ionice", "chronic", "flock", "timeout", "nohup", "exec",
            "sh", "bash", "python", "python3", "php", "perl", "ruby", "node", "run-one"}
_TAKES_A_VALUE = {"-u", "-g", "-n", "-c", "-p", "-C"}


def step_name(command: str, taken: set[str]) -> str:
    """A step name from a command: the program's name (after `cd ... &&`, `sudo -u x`, a
    shell or an interpreter), with its first plain argument when it has one; unique in
    `taken` (which it joins)."""
    words = _words(command.split("&&")[-1] if command.lstrip().startswith("cd ") else command)
    name = ""
    skip = False
    for i, word in enumerate(words):
        base = word.rsplit("/", 1)[-1]
        if skip or ("=" in word and not word.startswith("-")) or not base:
            skip = False
            continue
        shell = i > 0 and words[i - 1].rsplit("/", 1)[-1] in ("sh", "bash")
        if word == "-c" and shell and i + 1 < len(words):
            return step_name(words[i + 1], taken)  # sh -c "the real command"
        if word.startswith("-"):
            skip = word in _TAKES_A_VALUE  # sudo -u postgres, nice -n 10, ionice -c 3
            continue
        if base in _GENERIC:
            skip = base in ("timeout", "flock")  # timeout 2h CMD, flock FILE CMD
            continue
        name = base
        rest = [w for w in words[i + 1:] if not w.startswith("-") and "=" not in w and "/" not in w]
        if rest and re.fullmatch(r"[A-Za-z][\w.-]*", rest[0]):
            name = f"{name}-{rest[0]}"
        break
    from overnight.importing.files import as_step_name

    return as_step_name(name, taken, "line")


def _words(command: str) -> list[str]:
    import shlex

    try:
        return shlex.split(command, posix=True)
    except ValueError:
        return command.split()
