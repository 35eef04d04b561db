"""Slot arithmetic and leases at the service level: decay, expiry of leases (a crashed holder never
leaks a slot), and no oversubscription or lost update when many threads race (each thread has its
own database connection; the point of the test is PostgreSQL's row locks)."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from orchestration import tasks
from orchestration.models import ConcurrencyLease, ConcurrencyLimitV2
from orchestration.services import concurrency as services
from tenants.scoping import workspace_scope

pytestmark = pytest.mark.django_db


@pytest.fixture
def workspace(tenant):
    with workspace_scope(tenant.workspace.id):
        yield tenant.workspace


def _make(name: str = "db", limit: int = 2, **fields: Any) -> ConcurrencyLimitV2:
    return ConcurrencyLimitV2.objects.create(name=name, limit=limit, **fields)


def _reload(limit: ConcurrencyLimitV2) -> ConcurrencyLimitV2:
    return ConcurrencyLimitV2.objects.unscoped().get(id=limit.id)


def _age(lease_id: uuid.UUID, seconds: float) -> None:
    ConcurrencyLease.objects.unscoped().filter(id=lease_id).update(
        expiration=timezone.now() - dt.timedelta(seconds=seconds)
    )


class TestDecay:
    def _limit(self, **fields: Any) -> ConcurrencyLimitV2:
        now = timezone.now()
        values = {"name": "x", "limit": 10, "active_slots": 0, "denied_slots": 0, "slot_decay_per_second": 0.0,
                  "avg_slot_occupancy_seconds": 2.0, "updated": now, **fields}  # fmt: skip
        return ConcurrencyLimitV2(**values)

    def test_no_decay_without_a_rate(self):
        now = timezone.now()
        limit = self._limit(active_slots=3, updated=now - dt.timedelta(hours=1))
        assert services.limit_decayed(limit, now).active_slots == 3

    def test_whole_slots_decay_and_the_fraction_is_kept(self):
        now = timezone.now()
        start = now - dt.timedelta(seconds=2.5)
        limit = self._limit(active_slots=5, slot_decay_per_second=1.0, updated=start)
        decayed = services.limit_decayed(limit, now)
        assert decayed.active_slots == 3
        # The clock moves by the two whole seconds only: half a slot is still on its way out.
        assert decayed.clock == start + dt.timedelta(seconds=2)

    def test_frequent_callers_do_not_starve_decay(self):
        """Ten calls 0.4 s apart on a 1/s decay free four slots, not zero."""
        now = timezone.now() - dt.timedelta(seconds=4)
        limit = self._limit(active_slots=8, slot_decay_per_second=1.0, updated=now)
        for _ in range(10):
            now += dt.timedelta(seconds=0.4)
            decayed = services.limit_decayed(limit, now)
            limit.active_slots, limit.updated = decayed.active_slots, decayed.clock
        assert limit.active_slots == 4

    def test_never_below_zero(self):
        now = timezone.now()
        limit = self._limit(active_slots=2, denied_slots=3, slot_decay_per_second=5.0,
                            updated=now - dt.timedelta(minutes=1))  # fmt: skip
        decayed = services.limit_decayed(limit, now)
        assert (decayed.active_slots, decayed.denied_slots, decayed.clock) == (0, 0, now)

    def test_denied_slots_decay_with_the_clamped_occupancy(self):
        now = timezone.now()
        # An average occupancy of an hour is clamped to the 30 s maximum wait.
        limit = self._limit(
            denied_slots=5, avg_slot_occupancy_seconds=3600, updated=now - dt.timedelta(seconds=61)
        )
        assert services.limit_decayed(limit, now).denied_slots == 3


class TestIncrementDecrement:
    def test_occupancy_average_moves_towards_what_was_held(self, workspace):
        limit = _make(limit=1)
        services.slots_increment(names=["db"], slots=1)
        services.slots_decrement(names=["db"], slots=1, occupancy_seconds=12.0)
        # One sample of 12 s over limit * 2 = 2 samples: 2 + 12/2 - 2/2.
        assert _reload(limit).avg_slot_occupancy_seconds == pytest.approx(7.0)

    def test_a_released_lease_frees_a_decaying_limit(self, workspace):
        limit = _make(limit=5, slot_decay_per_second=0.5)
        acquired = services.slots_increment(names=["db"], slots=3, lease_ttl=dt.timedelta(minutes=1))
        services.lease_release(lease_id=acquired.lease_id)
        assert _reload(limit).active_slots == 0

    def test_retry_after_grows_with_the_queue(self, workspace):
        _make(limit=1, avg_slot_occupancy_seconds=4.0)
        services.slots_increment(names=["db"], slots=1)
        waits = []
        for _ in range(3):
            with pytest.raises(services.SlotsLocked) as locked:
                services.slots_increment(names=["db"], slots=1)
            waits.append(locked.value.retry_after)
        # 4 s per blocking slot (±25 % jitter), capped at 30 s.
        assert 3 <= waits[0] <= 5 * 1.25
        assert 9 <= waits[2] <= 12 * 1.25
        assert ConcurrencyLimitV2.objects.get(name="db").denied_slots == 3


class TestLeaseExpiry:
    def test_an_expired_lease_gives_its_slots_back(self, workspace):
        a, b = _make("a", 3), _make("b", 3)
        crashed = services.slots_increment(names=["a", "b"], slots=2, lease_ttl=dt.timedelta(seconds=60))
        alive = services.slots_increment(names=["a"], slots=1, lease_ttl=dt.timedelta(seconds=60))
        assert (_reload(a).active_slots, _reload(b).active_slots) == (3, 2)
        _age(crashed.lease_id, 1)
        assert services.leases_expire() == 1
        assert (_reload(a).active_slots, _reload(b).active_slots) == (1, 0)
        assert not ConcurrencyLease.objects.filter(id=crashed.lease_id).exists()
        assert ConcurrencyLease.objects.filter(id=alive.lease_id).exists()
        # The holder came back too late: nothing to renew, releasing gives nothing back twice.
        assert services.lease_renew(lease_id=crashed.lease_id, ttl=dt.timedelta(seconds=60)) is False
        assert services.lease_release(lease_id=crashed.lease_id) is False
        assert _reload(a).active_slots == 1

    def test_a_renewed_lease_is_not_expired(self, workspace):
        _make()
        acquired = services.slots_increment(names=["db"], slots=1, lease_ttl=dt.timedelta(seconds=60))
        _age(acquired.lease_id, 1)
        # Renewal after the expiration but before the sweep still holds the slot.
        assert services.lease_renew(lease_id=acquired.lease_id, ttl=dt.timedelta(seconds=60)) is True
        assert services.leases_expire() == 0
        assert ConcurrencyLimitV2.objects.get(name="db").active_slots == 1

    def test_the_sweep_crosses_workspaces_and_frees_each_in_its_own(self, two_workspaces):
        limits = []
        for tenant in two_workspaces:
            with workspace_scope(tenant.workspace.id):
                limit = _make()
                acquired = services.slots_increment(names=["db"], slots=2, lease_ttl=dt.timedelta(seconds=60))
                _age(acquired.lease_id, 5)
                limits.append(limit)
        # The Celery task, outside any workspace scope.
        assert tasks.expire_concurrency_leases() == 2
        assert [_reload(limit).active_slots for limit in limits] == [0, 0]
        assert not ConcurrencyLease.objects.unscoped().exists()

    def test_sweeps_in_batches(self, workspace):
        limit = _make(limit=10)
        for _ in range(5):
            acquired = services.slots_increment(names=["db"], slots=1, lease_ttl=dt.timedelta(seconds=60))
            _age(acquired.lease_id, 1)
        assert services.leases_expire(batch=2) == 5
        assert _reload(limit).active_slots == 0

    def test_a_deleted_limit_leaves_the_others_of_the_lease(self, workspace):
        _make("a", 2)
        b = _make("b", 2)
        acquired = services.slots_increment(names=["a", "b"], slots=1, lease_ttl=dt.timedelta(seconds=60))
        services.concurrency_limit_delete(id_or_name="a")
        assert services.lease_release(lease_id=acquired.lease_id) is True
        assert _reload(b).active_slots == 0


# --- racing threads ------------------------------------------------------------------------------


def _race(workspace_id: uuid.UUID, count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``count`` threads released together; each result or exception."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        try:
            with workspace_scope(workspace_id):
                barrier.wait()
                results[i] = work(i)
        except Exception as error:  # noqa: BLE001 (collected for the assertions)
            results[i] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


@pytest.mark.django_db(transaction=True)
class TestRaces:
    THREADS = 16

    def test_no_oversubscription(self, tenant):
        with workspace_scope(tenant.workspace.id):
            a, b = _make("a", 5), _make("b", 7)

        def take(_: int) -> Any:
            return services.slots_increment(names=["a", "b"], slots=1, lease_ttl=dt.timedelta(seconds=60))

        results = _race(tenant.workspace.id, self.THREADS, take)
        acquired = [r for r in results if isinstance(r, services.Acquired)]
        unexpected = [r for r in results if not isinstance(r, services.Acquired | services.SlotsLocked)]
        assert not unexpected, unexpected
        assert len(acquired) == 5
        assert (_reload(a).active_slots, _reload(b).active_slots) == (5, 5)
        assert ConcurrencyLease.objects.for_workspace(tenant.workspace.id).count() == 5

        # Everyone releases at once, twice over: every slot comes back exactly once.
        lease_ids = [r.lease_id for r in acquired] * 2
        _race(tenant.workspace.id, len(lease_ids), lambda i: services.lease_release(lease_id=lease_ids[i]))
        assert (_reload(a).active_slots, _reload(b).active_slots) == (0, 0)

    def test_no_lost_updates_between_takers_releasers_and_the_sweep(self, tenant):
        """Half the threads take and give back a slot, a quarter renew leases, a quarter sweep
        expired ones; at the end the count equals the leases still held."""
        with workspace_scope(tenant.workspace.id):
            limit = _make("db", 1000)
            held = [
                services.slots_increment(names=["db"], slots=1, lease_ttl=dt.timedelta(seconds=60)).lease_id
                for _ in range(self.THREADS)
            ]
        for lease_id in held[::2]:
            _age(lease_id, 1)

        def work(i: int) -> Any:
            if i % 4 == 0:
                return services.leases_expire()
            if i % 4 == 1:
                return services.lease_renew(lease_id=held[i], ttl=dt.timedelta(seconds=60))
            taken = services.slots_increment(names=["db"], slots=1, lease_ttl=dt.timedelta(seconds=60))
            services.lease_release(lease_id=taken.lease_id)
            return services.lease_release(lease_id=held[i])

        results = _race(tenant.workspace.id, self.THREADS, work)
        assert not [r for r in results if isinstance(r, Exception)], results
        leases_left = ConcurrencyLease.objects.for_workspace(tenant.workspace.id).count()
        assert _reload(limit).active_slots == leases_left
