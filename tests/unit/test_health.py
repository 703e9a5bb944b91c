"""A deployment's health: probes and the circuit breaker, with its single half-open trial."""

from __future__ import annotations

import pytest

from tenantgate.routing.health import Health, TenantCircuits
from tests.unit.manual_clock import ManualClock


def opened() -> tuple[Health, ManualClock]:
    clock = ManualClock()
    health = Health(failures_to_open=2, cooldown_s=10.0, clock=clock)
    assert health.failure() is False and health.available  # one failure is not a pattern
    assert health.failure() is True and not health.available
    assert health.state == "circuit_open"
    return health, clock


def test_consecutive_failures_open_the_circuit_and_a_success_resets_the_count() -> None:
    health = Health(failures_to_open=2)
    health.failure()
    health.success()
    assert health.failure() is False and health.state == "healthy"
    opened()


def test_after_the_cooldown_one_trial_goes_out_and_its_success_closes_the_circuit() -> None:
    health, clock = opened()
    clock.now = 10.0
    assert health.state == "half_open" and health.available
    assert health.sending() is True  # the trial
    assert not health.available  # nobody else while it is out
    health.success()
    assert health.state == "healthy" and health.available and health.sending() is False


def test_what_another_instance_saw_opens_and_closes_the_circuit_here() -> None:
    health, clock = opened()
    assert health.opened_elsewhere() is False  # open already: its own cooldown stands
    clock.now = 10.0
    assert health.opened_elsewhere() is True and health.state == "circuit_open"  # half-open here, failed there
    health.closed_elsewhere()
    assert health.state == "healthy"
    clock.now = 30.0
    health.opened_elsewhere()
    clock.now = 40.0
    health.sending()  # this instance's own trial is out
    health.closed_elsewhere()
    assert health.trial and health.state == "half_open"  # it decides here
    assert health.failure() is True


def test_a_failed_trial_reopens_at_once() -> None:
    health, clock = opened()
    clock.now = 10.0
    health.sending()
    assert health.failure() is True
    assert health.state == "circuit_open" and not health.available
    clock.now = 20.0
    assert health.available


def test_a_trial_without_an_answer_lets_the_next_request_try() -> None:
    health, clock = opened()
    clock.now = 10.0
    health.sending()
    health.no_verdict()
    assert health.available


def test_a_failed_probe_takes_the_deployment_out_until_it_answers() -> None:
    health = Health()
    health.probe_ok = False
    assert not health.available and health.state == "probe_failed"
    health.probe_ok = True
    assert health.available


def test_a_tenants_own_circuit_opens_before_the_deployments_and_tries_again_after_its_cooldown() -> None:
    now = [0.0]
    circuits = TenantCircuits(failures_to_open=2, cooldown_s=10, evidence_s=60, clock=lambda: now[0])
    circuits.success("t2", "d")  # another tenant was served there: the deployment works
    assert circuits.failure("t1", "d") is False  # the first failure also counts for the deployment
    assert circuits.failure("t1", "d") is True  # the second is the tenant's own: its circuit opens
    assert circuits.open_for("t1", "d") == 10 and circuits.open_for("t2", "d") is None
    assert circuits.open_for("t1", "other") is None  # only on that deployment
    now[0] = 10.0
    assert circuits.open_for("t1", "d") is None  # half-open: the next request tries
    assert circuits.failure("t1", "d") is True  # and its failure opens it again at once
    now[0] = 25.0
    circuits.success("t1", "d")
    assert circuits.failure("t1", "d") is False  # a success started the count again


def test_failures_count_for_the_deployment_when_no_other_tenant_was_served_there_lately() -> None:
    now = [0.0]
    circuits = TenantCircuits(failures_to_open=1, cooldown_s=10, evidence_s=60, clock=lambda: now[0])
    assert not any(circuits.failure("t1", "d") for _ in range(5))  # alone there: the deployment's failures
    circuits.success("t2", "d")
    now[0] = 61.0  # that evidence is too old
    assert circuits.failure("t1", "d") is False
    circuits.success("t2", "d")
    assert circuits.failure("t1", "d") is True


def test_without_tenant_circuits_every_failure_is_the_deployments() -> None:
    circuits = TenantCircuits(failures_to_open=0)
    circuits.success("t2", "d")
    assert not any(circuits.failure("t1", "d") for _ in range(5))


def test_a_deployment_failing_for_every_tenant_is_the_deployments_not_theirs() -> None:
    circuits = TenantCircuits(failures_to_open=2, cooldown_s=10, evidence_s=60)
    circuits.success("t1", "d")
    circuits.success("t2", "d")  # both served: then it fails for both
    verdicts = [circuits.failure(tenant, "d") for tenant in ("t1", "t2", "t1", "t2")]
    assert verdicts == [False, False, False, False]  # once both fail, neither is evidence that it works


def test_what_the_tenant_circuits_hold_is_bounded_however_many_tenants_come(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TenantCircuits, "MAX_TRACKED", 50)
    circuits = TenantCircuits(failures_to_open=3, clock=ManualClock())
    for n in range(1_000):  # a spray of tenants, each failing once and each served once
        circuits.failure(f"t{n}", "d")
        circuits.success(f"s{n}", "d")
    assert len(circuits._failures) <= 50
    assert len(circuits._served["d"]) == TenantCircuits.WITNESSES
    assert list(circuits._served["d"]) == [f"s{n}" for n in range(1_000 - TenantCircuits.WITNESSES, 1_000)]
