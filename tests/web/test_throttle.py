"""Login throttling as a pure rule (throttle.Throttle), on fixed instants."""

from __future__ import annotations

import pytest

from overnight.web.throttle import FREE, LONGEST, WINDOW, Throttle, address_key

T0 = 1_800_000_000.0


def fail_times(throttle: Throttle, keys: tuple[str, ...], times: list[float]) -> None:
    for t in times:
        assert throttle.admit(keys, t).admitted, t


def test_a_handful_of_failures_go_through_then_the_next_try_waits():
    throttle = Throttle()
    fail_times(throttle, ("name:olive",), [T0 + i for i in range(FREE)])
    verdict = throttle.admit(("name:olive",), T0 + FREE)
    assert not verdict.admitted and verdict.first_refusal
    assert verdict.wait == pytest.approx(2 - 1)  # 2 s after the latest failure (at T0 + FREE - 1)
    assert not throttle.admit(("name:olive",), T0 + FREE + 0.5).first_refusal  # said once


@pytest.mark.parametrize(("failures", "wait"), [
    (FREE, 2), (FREE + 1, 4), (FREE + 2, 8), (FREE + 5, 64), (FREE + 20, LONGEST),
])
def test_each_failure_beyond_the_free_ones_doubles_the_wait(failures, wait):
    throttle = Throttle(window=10**9)
    t = T0
    for _ in range(failures):
        t += throttle.wait_for("k", t)
        assert throttle.admit(("k",), t).admitted
    assert throttle.wait_for("k", t) == wait


def test_failures_older_than_the_window_are_forgotten():
    throttle = Throttle()
    fail_times(throttle, ("k",), [T0 + i for i in range(FREE)])
    assert throttle.wait_for("k", T0 + FREE) > 0
    assert throttle.wait_for("k", T0 + WINDOW + 0.5) == 0  # the first failure has aged out


def test_any_key_held_back_holds_the_try_back_and_nothing_is_counted():
    """Per name and per address: guessing many names from one address, or one name from
    many addresses, is held back all the same."""
    throttle = Throttle()
    for i in range(FREE):
        assert throttle.admit((f"name:n{i}", "address:10.0.0.9"), T0 + i).admitted
    assert not throttle.admit(("name:fresh", "address:10.0.0.9"), T0 + FREE).admitted
    assert throttle.wait_for("name:fresh", T0 + FREE) == 0  # the refused try counted nothing
    for i in range(FREE):
        assert throttle.admit(("name:olive", f"address:10.0.1.{i}"), T0 + i).admitted
    assert not throttle.admit(("name:olive", "address:10.0.2.1"), T0 + FREE).admitted


def test_a_success_takes_its_own_try_back_and_clears_the_users_failures():
    throttle = Throttle()
    keys = ("name:olive", "address:10.0.0.1")
    fail_times(throttle, keys, [T0 + i for i in range(FREE - 1)])
    assert throttle.admit(keys, T0 + 10).admitted
    throttle.forgive(keys, T0 + 10, clear=["name:olive"])
    assert throttle.wait_for("name:olive", T0 + 10) == 0
    # The address keeps its earlier failures (another name tried from there is no proof).
    assert throttle.admit(("name:x", "address:10.0.0.1"), T0 + 11).admitted
    assert not throttle.admit(("name:y", "address:10.0.0.1"), T0 + 11.5).admitted


def test_many_tries_at_once_cannot_slip_through_before_their_failures_are_known():
    """A try counts as a failure when admitted, before its password is checked."""
    throttle = Throttle()
    admitted = [throttle.admit(("name:olive",), T0).admitted for _ in range(50)]
    assert admitted.count(True) == FREE


def test_made_up_names_cannot_grow_the_memory_without_end():
    throttle = Throttle(capacity=100)
    for i in range(1000):
        throttle.admit((f"name:{i}",), T0 + i)
    assert len(throttle._keys) == 100


@pytest.mark.parametrize(("host", "key"), [
    ("192.0.2.7", "address:192.0.2.7"),
    ("2001:db8:1:2:aaaa::1", "address:2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff:ffff:ffff:ffff", "address:2001:db8:1:2::/64"),
    ("2001:db8:1:3::1", "address:2001:db8:1:3::/64"),
    ("::ffff:192.0.2.7", "address:192.0.2.7"),  # an IPv4 client on a dual-stack socket
    ("unknown", "address:unknown"),
])
def test_an_ipv6_client_is_counted_by_its_64_not_by_each_of_its_addresses(host, key):
    assert address_key(host) == key
