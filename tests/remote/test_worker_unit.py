"""The systemd unit for a worker: valid, and it runs `overnight worker` on a queue."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

UNIT = Path(__file__).resolve().parents[2] / "examples" / "deploy" / "overnight-worker.service"


def test_the_worker_unit_runs_a_worker_and_lets_running_steps_finish_on_stop(tmp_path):
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text())
    service = parser["Service"]
    args = shlex.split(service["ExecStart"])
    assert args[1:3] == ["worker", "--queue"] and args[3]
    assert service["KillSignal"] == "SIGTERM"  # Celery's warm shutdown
    assert service["Restart"] == "on-failure"
    assert parser["Install"]["WantedBy"] == "multi-user.target"

    analyze = shutil.which("systemd-analyze")
    if analyze:  # systemd's own check as well, with ExecStart pointing at a real program
        copy = tmp_path / "overnight-worker.service"
        overnight = Path(sys.executable).parent / "overnight"
        copy.write_text(UNIT.read_text().replace("/usr/local/bin/overnight", str(overnight)))
        result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "Unknown" not in result.stderr and "ignoring" not in result.stderr, result.stderr
