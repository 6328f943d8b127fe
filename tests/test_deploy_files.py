"""The deployment files in examples/deploy/: valid syntax, and the settings that matter."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

DEPLOY = Path(__file__).resolve().parent.parent / "examples" / "deploy"


def read_ini(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # systemd keys are case-sensitive
    with open(path) as f:
        parser.read_file(f)
    return parser


def test_the_systemd_unit_runs_the_daemon_and_never_kills_a_running_night(tmp_path):
    unit = read_ini(DEPLOY / "overnight-scheduler.service")
    assert unit.sections() == ["Unit", "Service", "Install"]
    service = unit["Service"]
    assert shlex.split(service["ExecStart"])[1:] == ["scheduler"]
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    # Only the daemon is stopped: the nights it launched run on through a restart.
    assert service["KillMode"] == "process"
    assert service["Restart"] == "on-failure"
    assert unit["Install"]["WantedBy"] == "multi-user.target"

    analyze = shutil.which("systemd-analyze")
    if analyze:  # systemd's own check as well, with ExecStart pointing at a real program
        overnight = Path(sys.executable).parent / "overnight"
        copy = tmp_path / "overnight-scheduler.service"
        text = (DEPLOY / "overnight-scheduler.service").read_text()
        copy.write_text(text.replace("/usr/local/bin/overnight", str(overnight)))
        result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "Unknown" not in result.stderr and "ignoring" not in result.stderr, result.stderr


def test_the_supervisor_entry_runs_the_daemon_and_stops_only_the_daemon():
    conf = read_ini(DEPLOY / "supervisor.conf")
    assert conf.sections() == ["program:overnight-scheduler"]
    program = conf["program:overnight-scheduler"]
    argv = shlex.split(program["command"])
    assert argv[-1] == "scheduler" and argv[1] == "--config" and argv[2].startswith("/")
    assert program["stopsignal"] == "TERM"
    assert program["stopasgroup"] == "false" and program["killasgroup"] == "false"
    assert program["autorestart"] == "true"
