"""The batch module API: how steps chain by default, and what validation refuses."""

from __future__ import annotations

from datetime import date

import pytest

from overnight import Batch
from overnight.durations import parse_duration
from overnight.errors import DefinitionError


def test_steps_without_after_form_a_chain_in_declaration_order() -> None:
    b = Batch("all")
    b.command("a", "true")
    b.command("b", "true")
    b.command("c", "true")
    assert [b.steps[n].after for n in "abc"] == [(), ("a",), ("b",)]


def test_parallel_group_depends_on_what_came_before_and_what_follows_depends_on_all_of_it() -> None:
    b = Batch("all")
    b.command("export", "true")
    with b.parallel():
        b.command("r1", "true")
        b.command("r2", "true")

    @b.step
    def publish(ctx):  # noqa: ANN001, ANN202
        pass

    assert b.steps["r1"].after == ("export",)
    assert b.steps["r2"].after == ("export",)
    assert set(b.steps["publish"].after) == {"r1", "r2"}


def test_after_accepts_names_step_objects_and_decorated_functions_and_empty_list() -> None:
    b = Batch("all")
    first = b.command("first", "true")

    @b.step(after=[])
    def load_data(ctx):  # noqa: ANN001, ANN202
        pass

    b.command("last", "true", after=[first, load_data, "first"])
    assert b.steps["load-data"].after == ()
    assert b.steps["last"].after == ("first", "load-data")


def test_validate_returns_a_dependency_order() -> None:
    b = Batch("all")
    b.command("late", "true", after=["early"])
    b.command("early", "true", after=[])
    assert [s.name for s in b.validate()] == ["early", "late"]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda b: b.command("Bad Name", "true"), "not valid"),
        (lambda b: b.command("../etc", "true"), "not valid"),
        (lambda b: b.command("x" * 101, "true"), "101 characters"),
        (lambda b: (b.command("a", "true"), b.command("a", "true")), "duplicate"),
        (lambda b: b.command("a", "true", timeout="soon"), "timeout: 'soon' is not a duration"),
        (lambda b: b.command("a", "true", retries=-1), "retries"),
        (lambda b: b.command("a", "true", colour="red"), "unknown option colour="),
        (lambda b: b.command("a", ""), "command is empty"),
        (lambda b: b.command("a", ["ls", 3]), "list of strings"),
        (lambda b: b.command("a", "true", env={"A": 1}), "env"),
        (lambda b: b.command("a", "true", idempotent="yes"), "idempotent"),
    ],
    ids=["spaces", "dot-dot-slash", "too-long", "duplicate", "bad-timeout", "negative-retries",
         "unknown-option", "empty-command", "non-string-argv", "bad-env", "bad-idempotent"],
)
def test_bad_definitions_are_refused_when_declared(build, message: str) -> None:  # noqa: ANN001
    with pytest.raises(DefinitionError, match=message):
        build(Batch("all"))


def test_unknown_prerequisite_and_cycle_are_refused_by_validate() -> None:
    b = Batch("all")
    b.command("a", "true", after=["ghost"])
    with pytest.raises(DefinitionError, match="'ghost', which is not a step"):
        b.validate()
    b = Batch("all")
    b.command("a", "true", after=["c"])
    b.command("b", "true", after=["a"])
    b.command("c", "true", after=["b"])
    with pytest.raises(DefinitionError, match="cycle: a -> b -> c -> a|cycle: .* -> .*"):
        b.validate()


def test_placeholders_are_filled_and_other_braces_are_left_alone() -> None:
    b = Batch("all")
    step = b.command("s", "report {date} {date:%Y%m%d} {batch} | awk '{print $1}'")
    assert step.render_command(date(2026, 11, 26)) == (
        "report 2026-11-26 20261126 all | awk '{print $1}'"
    )
    argv = b.command("t", ["bin/export", "--date", "{date:%d.%m.%Y}"])
    assert argv.render_command(date(2026, 1, 2)) == ["bin/export", "--date", "02.01.2026"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("20m", 1200), ("1h30m", 5400), ("500ms", 0.5), (45, 45), ("2.5", 2.5), ("1d", 86400)],
)
def test_durations_read_as_operators_write_them(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "", "1x", "-5", "m", True])
def test_bad_durations_say_what_a_duration_looks_like(text: object) -> None:
    with pytest.raises(DefinitionError, match="duration"):
        parse_duration(text)
