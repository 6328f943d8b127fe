"""How to write an `overnight` command: the argv a child process runs, and the hint a
person is told to type.

Both name the batch the way the command line accepts it (its name in overnight.toml, or
the path of its module) and the configuration the way it was found. A child process is
always told `--config`, so it reads the same overnight.toml whatever its folder and
environment. A hint names `--config` when the user named one (`--config` or
OVERNIGHT_CONFIG), or when it is read away from the project folder (a mail, a webhook);
otherwise it reads as the user typed it, in the folder where they typed it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from overnight.config import Config

PROGRAM = "overnight"


def this_overnight() -> list[str]:
    """The program a child process runs: this installation's overnight, under this Python."""
    return [sys.executable, "-m", "overnight"]


class CommandLine:
    # A plain class: the runner imports this, and a dataclass costs ~1 ms of start-up.
    __slots__ = ("config_path", "config_given")

    def __init__(self, config_path: Path | None = None, config_given: bool = False) -> None:
        self.config_path = config_path      # the overnight.toml in use (absolute), or none
        self.config_given = config_given    # named by --config or OVERNIGHT_CONFIG, not found in the folder

    @classmethod
    def of(cls, config: Config) -> CommandLine:
        return cls(config.path, config.path_given)

    def _config_words(self, always: bool) -> list[str]:
        if self.config_path is None or not (always or self.config_given):
            return []
        return ["--config", str(self.config_path)]

    def argv(self, *args: str, program: Sequence[str] | None = None) -> list[str]:
        """What a child process runs (`program`: another way to start overnight, for tests)."""
        return [*(program or this_overnight()), *self._config_words(True), *args]

    def hint(self, *args: str, anywhere: bool = False) -> str:
        """What a person types; `anywhere`: the reader may be in another folder."""
        import shlex

        return shlex.join([PROGRAM, *self._config_words(anywhere), *args])

    def resume_hint(self, batch_arg: str, day: str, *, anywhere: bool = False) -> str:
        """The command that resumes the run of BATCH for `day` (what succeeded is skipped)."""
        return self.hint("run", batch_arg, "--date", day, anywhere=anywhere)

    def mark_hint(self, batch_arg: str, step: str | Sequence[str], action: str, day: str) -> str:
        """The mark of one step, or of several at once."""
        steps = [step] if isinstance(step, str) else list(step)
        return self.hint("mark", batch_arg, *steps, f"--{action}", "--date", day)


def batch_argument(config: Config, name: str, module_path: str | Path | None = None) -> str:
    """How a command names the batch: its name when overnight.toml lists it, else the
    absolute path of its module (a batch run by path has no name the CLI would know)."""
    if name in config.batches or module_path is None:
        return name
    return str(Path(module_path).resolve())
