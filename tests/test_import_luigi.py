"""`overnight import luigi MODULE:TASK`, with real Luigi and Rattail-style modules: the
tasks run in Luigi's order as a batch; a task Luigi already ran for a date is adopted
there, not run again; a datasync wait becomes a wait step."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from clikit import Project, wait_for

DAY = "2026-11-26"
NEXT = "2026-11-27"

# As rattail.luigi.tasks has them (trimmed): a task is done when its output file exists,
# and may wait for datasync after its run.
RATTAIL = '''
import datetime
import os

import luigi


class OvernightTask(luigi.Task):
    """Base class for overnight automation tasks."""
    date = luigi.DateParameter()
    filename = None
    datasync_wait_minutes = None

    def output(self):
        return luigi.LocalTarget("{}/{}".format(self.date.strftime("%Y/%m/%d"), self.filename))

    def run_command(self):
        raise NotImplementedError

    def touch_output(self):
        with self.output().open("w"):
            pass

    def datasync_wait(self, minutes=None, initial_delay=10):
        # the real one runs `bin/rattail datasync --timeout=N wait`: here a queue file
        # that must be empty
        queue = os.path.join(os.environ["EOD_HOME"], "datasync-queue")
        if os.path.exists(queue) and open(queue).read().strip():
            raise RuntimeError("datasync queue not empty")

    def run(self):
        self.run_command()
        if self.datasync_wait_minutes:
            self.datasync_wait(initial_delay=60)
        self.touch_output()


class OvernightTaskWrapper(luigi.WrapperTask):
    date = luigi.DateParameter()
'''

EOD = '''
import os

from rattail_style import OvernightTask, OvernightTaskWrapper


def ran(name, date):
    with open(os.path.join(os.environ["EOD_HOME"], "ran.txt"), "a") as f:
        f.write(f"{name} {date}\\n")


class ExportPos(OvernightTask):
    filename = "export-pos"

    def run_command(self):
        ran("export-pos", self.date)


class ImportProducts(OvernightTask):
    filename = "import-products"

    def requires(self):
        return ExportPos(self.date)

    def run_command(self):
        ran("import-products", self.date)


class Reports(OvernightTask):
    filename = "reports"

    def requires(self):
        return ImportProducts(self.date)

    def run_command(self):
        ran("reports", self.date)


class Overnight(OvernightTaskWrapper):
    def requires(self):
        return Reports(self.date)
'''


@pytest.fixture
def eod(project: Project) -> Project:
    (project.root / "overnight.toml").unlink()
    (project.root / "rattail_style.py").write_text(RATTAIL)
    (project.root / "eod.py").write_text(EOD)
    return project


def env(project: Project) -> dict[str, str]:
    return {"EOD_HOME": str(project.root)}


def ran(project: Project) -> list[str]:
    path = project.root / "ran.txt"
    out = path.read_text().splitlines() if path.exists() else []
    if path.exists():
        path.unlink()
    return out


def luigi_output(project: Project, day: str, name: str) -> Path:
    return project.root / day.replace("-", "/") / name


def run_luigi(project: Project, day: str) -> None:
    """The same module run by Luigi itself, as before the switch."""
    done = subprocess.run(
        [sys.executable, "-m", "luigi", "--module", "eod", "Overnight", "--date", day, "--local-scheduler",
         "--no-lock"],
        cwd=project.root, env=project.env(**env(project), PYTHONPATH=str(project.root)),
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_three_task_module_runs_in_luigis_order_as_a_batch(eod: Project) -> None:
    result = eod.run("import", "luigi", "eod:Overnight", "--name", "all", **env(eod))
    assert result.returncode == 0, result.stderr
    assert "wrote all.py, overnight.toml: batch 'all', 3 steps from eod:Overnight" in result.stdout
    run = eod.run("run", "all", "--date", DAY, **env(eod))
    assert run.returncode == 0, run.stdout + run.stderr
    ours = ran(eod)
    assert ours == [f"export-pos {DAY}", f"import-products {DAY}", f"reports {DAY}"]
    # Luigi's own order for the same module, on another date, is the same.
    run_luigi(eod, NEXT)
    assert [line.split()[0] for line in ran(eod)] == [line.split()[0] for line in ours]
    # Each task's run() did its whole work, its Luigi output included.
    assert luigi_output(eod, DAY, "reports").exists()


def test_a_task_luigi_already_ran_for_a_date_is_adopted_there_and_the_rest_runs(eod: Project) -> None:
    assert eod.run("import", "luigi", "eod:Overnight", "--name", "all", **env(eod)).returncode == 0
    out = luigi_output(eod, DAY, "export-pos")
    out.parent.mkdir(parents=True)
    out.touch()  # Luigi ran the first task for DAY before the switch
    run = eod.run("run", "all", "--date", DAY, **env(eod))
    assert run.returncode == 0, run.stdout + run.stderr
    assert ran(eod) == [f"import-products {DAY}", f"reports {DAY}"]
    assert "adopt    export-pos (done before overnight: Luigi says it is complete)" in run.stdout
    view = eod.status("all", "--date", DAY)
    assert [(s["name"], s["state"], len(s["attempts"])) for s in view["steps"]] == [
        ("export-pos", "adopted", 0), ("import-products", "succeeded", 1), ("reports", "succeeded", 1)]
    assert view["state"] == "succeeded"
    text = eod.run("status", "all", "--date", DAY).stdout
    assert "export-pos       adopted" in text
    assert "1 adopted, 2 succeeded" in eod.run("history", "all").stdout
    report = eod.run("report", "all", "--date", DAY).stdout
    assert "export-pos       adopted" in report
    # After that the ledger is the record: a resume skips it, a rerun runs it.
    again = eod.run("run", "all", "--date", DAY, **env(eod))
    assert "skip     export-pos (adopted in launch 1)" in again.stdout and ran(eod) == []
    rerun = eod.run("run", "all", "--date", DAY, "--rerun", "export-pos", **env(eod))
    assert rerun.returncode == 0 and ran(eod) == [f"export-pos {DAY}"]
    # Another date with no Luigi output: everything runs.
    assert eod.run("run", "all", "--date", NEXT, **env(eod)).returncode == 0
    assert len(ran(eod)) == 3


def test_an_operator_who_says_redo_is_not_overruled_by_luigi(eod: Project) -> None:
    assert eod.run("import", "luigi", "eod:Overnight", "--name", "all", **env(eod)).returncode == 0
    out = luigi_output(eod, DAY, "export-pos")
    out.parent.mkdir(parents=True)
    out.touch()
    assert eod.run("run", "all", "--date", DAY, **env(eod)).returncode == 0
    ran(eod)
    assert eod.run("mark", "all", "export-pos", "--redo", "--date", DAY).returncode == 0
    assert eod.run("run", "all", "--date", DAY, **env(eod)).returncode == 0
    assert ran(eod) == [f"export-pos {DAY}"]


def test_the_dry_run_says_which_steps_would_be_adopted(eod: Project) -> None:
    assert eod.run("import", "luigi", "eod:Overnight", "--name", "all", **env(eod)).returncode == 0
    out = luigi_output(eod, DAY, "export-pos")
    out.parent.mkdir(parents=True)
    out.touch()
    dry = eod.run("run", "all", "--date", DAY, "--dry-run", **env(eod))
    said = {line.split()[0]: line for line in dry.stdout.splitlines() if line.startswith("  ")}
    assert "adopt (done before overnight: Luigi says it is complete)" in said["export-pos"], dry.stdout
    assert said["import-products"].split()[1] == "run"
    assert not eod.ledger_path.exists()  # nothing recorded


def test_the_module_reads_as_a_person_would_write_it(eod: Project) -> None:
    assert eod.run("import", "luigi", "eod:Overnight", "--name", "all", **env(eod)).returncode == 0
    module = (eod.root / "all.py").read_text()
    assert module.startswith('"""all: the Luigi task eod:Overnight and the 3 tasks it needs, as one batch.')
    assert "Left out, as they do no work of their own: Overnight" in module
    assert textwrap.dedent('''\
        # ExportPos (eod.py, line 12)
        @batch.step(name="export-pos", adopt_if=lambda day: eod.ExportPos(date=day).complete())
        def export_pos(ctx):
            eod.ExportPos(date=ctx.date).run()
        ''') in module
    assert '@batch.step(name="import-products", adopt_if=' in module  # after export-pos: no after=
    compile(module, "all.py", "exec")


DATASYNC = EOD.replace('''class ImportProducts(OvernightTask):
    filename = "import-products"
''', '''class ImportProducts(OvernightTask):
    filename = "import-products"
    datasync_wait_minutes = 1
''')


def test_a_datasync_wait_becomes_a_wait_step_after_its_task(eod: Project) -> None:
    (eod.root / "eod.py").write_text(DATASYNC)
    assert eod.run("import", "luigi", "eod:Overnight", "--name", "all", **env(eod)).returncode == 0
    module = (eod.root / "all.py").read_text()
    assert ('batch.wait("import-products.datasync", check=import_products_datasync, every="30s", '
            'timeout="1m",') in module
    # Tests do not wait a minute for the first check: the delay is an option like any other.
    (eod.root / "all.py").write_text(module.replace('initial_delay="60s"', 'initial_delay="0s"')
                                     .replace('every="30s"', 'every="0.2s"'))
    queue = eod.root / "datasync-queue"
    queue.write_text("3 changes\n")
    runner = eod.start("run", "all", "--date", DAY, **env(eod))
    wait_log = eod.state_dir / "logs" / "all" / DAY / "import-products.datasync.1.log"
    wait_for(lambda: wait_log.exists() and "datasync queue not empty" in wait_log.read_text(),
             what="a check that finds the queue not empty")
    assert "reports" not in (eod.root / "ran.txt").read_text()  # what follows waits
    queue.write_text("")  # datasync caught up
    assert runner.wait(timeout=60) == 0, runner.stdout.read() if runner.stdout else ""
    states = eod.states("all", "--date", DAY)
    assert list(states) == ["export-pos", "import-products", "import-products.datasync", "reports"]
    assert set(states.values()) == {"succeeded"}
    assert [line.split()[0] for line in ran(eod)] == ["export-pos", "import-products", "reports"]
    log = eod.run("logs", "all", "import-products.datasync", "--date", DAY).stdout
    assert "ready after" in log


@pytest.mark.parametrize(
    "source, said",
    [
        ("import luigi\nclass T(luigi.Task):\n    store = luigi.Parameter()\n    def run(self): pass\n",
         "T (m.py, line 2) has a parameter 'store' besides the date"),
        ("import luigi, datetime\nclass A(luigi.Task):\n    date = luigi.DateParameter()\n"
         "    def run(self): pass\nclass T(luigi.Task):\n    date = luigi.DateParameter()\n"
         "    def requires(self): return A(self.date - datetime.timedelta(days=1))\n"
         "    def run(self): pass\n",
         "T requires A for 2026-11-25, not for its own date"),
        ("import luigi\nclass Other(luigi.Task):\n    def run(self): pass\n", "no Luigi task named 'T'"),
        ("import luigi\nclass T(luigi.WrapperTask):\n    pass\n", "do no work of their own"),
        ("raise RuntimeError('no database')\n", "m.py: import failed: RuntimeError: no database"),
    ],
    ids=["other-parameter", "another-date", "no-such-task", "no-work", "import-fails"],
)
def test_what_cannot_be_a_batch_is_refused_naming_it(project: Project, source: str, said: str) -> None:
    (project.root / "overnight.toml").unlink()
    (project.root / "m.py").write_text(source)
    result = project.run("import", "luigi", "m:T", "--date", DAY)
    assert result.returncode == 2, result.stdout + result.stderr
    assert said in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
    assert sorted(p.name for p in project.root.iterdir() if not p.name.startswith("__")) == ["m.py"]


def test_a_module_given_by_path_is_imported_from_its_folder(eod: Project, tmp_path: Path) -> None:
    elsewhere = tmp_path / "luigi-home"
    elsewhere.mkdir()
    for name in ("rattail_style.py", "eod.py"):
        (eod.root / name).rename(elsewhere / name)
    result = eod.run("import", "luigi", f"{elsewhere}/eod.py:Overnight", **env(eod))
    assert result.returncode == 0, result.stderr
    # Not overnight.py: `python -m overnight` run from this folder would import that instead.
    module = (eod.root / "overnight-batch.py").read_text()
    assert f'sys.path.insert(0, "{elsewhere}")  # where the Luigi module is' in module
    listed = json.loads(eod.run("list", "--json").stdout)
    assert [b["batch"] for b in listed] == ["overnight"]
    assert eod.run("run", "overnight", "--date", DAY, **env(eod)).returncode == 0
    assert len(ran(eod)) == 3
