"""Key → principal resolution: caching, revocation, expiry, suspension and store outages."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from tenantgate.access.audit import AuditLog
from tenantgate.access.callers import SYSTEM
from tenantgate.auth.directory import KeyDirectory
from tenantgate.auth.key_ids import FreshLookups, KeyIds
from tenantgate.clock import utcnow
from tenantgate.domain import ApiKey, KeyChanges, Role, Tenant, TenantStatus
from tenantgate.errors import AuthenticationFailed, PermissionDenied, StoreUnavailable
from tenantgate.storage.memory import MemoryStore
from tenantgate.tenancy import TenancyService

PLANS = frozenset({"starter", "growth"})


class CountingStore(MemoryStore):
    """The in-memory store, counting key lookups and able to go down."""

    def __init__(self) -> None:
        super().__init__()
        self.key_lookups = 0
        self.tenant_lookups = 0
        self.down = False
        self.poll_reads: KeyChanges | None = None  # what a poll reads, if not what is stored now
        self.answering: asyncio.Event | None = None  # when set: key lookups wait for it

    async def get_key(self, key_id: str) -> ApiKey | None:
        self.key_lookups += 1
        if self.answering is not None:
            await self.answering.wait()
        if self.down:
            raise ConnectionRefusedError("store is down")
        return await super().get_key(key_id)

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        self.tenant_lookups += 1
        return await super().get_tenant(tenant_id)

    async def changes_since(self, since: datetime) -> KeyChanges:
        return self.poll_reads or await super().changes_since(since)


@pytest.fixture
def store() -> CountingStore:
    return CountingStore()


async def make_key(store: CountingStore, **kwargs: object) -> tuple[TenancyService, str, str]:
    service = TenancyService(store, None, PLANS, AuditLog(store))
    await service.create_tenant(SYSTEM, "acme", plan="growth", allowed_models=("sim-small", "sim-large"))
    created = await service.create_key(SYSTEM, "acme", **kwargs)  # type: ignore[arg-type]
    return service, created.key.id, created.plaintext


async def test_valid_key_resolves_once_then_comes_from_cache(store: CountingStore) -> None:
    _, key_id, plaintext = await make_key(store, models=("sim-small",))
    directory = KeyDirectory(store)
    for _ in range(3):
        principal = await directory.authenticate(f"Bearer {plaintext}", None)
    assert principal.key_id == key_id and principal.tenant_slug == "acme" and principal.plan == "growth"
    assert principal.allowed_models == frozenset({"sim-small"})  # tenant ∩ key
    assert store.key_lookups == 1


async def test_a_cold_key_of_a_known_tenant_is_one_lookup(store: CountingStore) -> None:
    """The tenant held for its first key (and kept current by the poll) serves its other keys too."""
    service, _, first = await make_key(store)
    second = (await service.create_key(SYSTEM, "acme")).plaintext
    directory = KeyDirectory(store)
    await directory.authenticate(f"Bearer {first}", None)
    assert (store.key_lookups, store.tenant_lookups) == (1, 1)
    principal = await directory.authenticate(f"Bearer {second}", None)
    assert (store.key_lookups, store.tenant_lookups) == (2, 1) and principal.tenant_slug == "acme"
    await service.update_tenant(SYSTEM, "acme", status=TenantStatus.SUSPENDED)  # elsewhere: no directory here
    third = (await service.create_key(SYSTEM, "acme")).plaintext
    await directory.refresh()  # the poll brings the suspension; a new key of the tenant sees it
    with pytest.raises(PermissionDenied):
        await directory.authenticate(f"Bearer {third}", None)


async def test_a_cold_key_is_read_once_for_every_request_waiting_and_one_that_leaves_stops_none(
    store: CountingStore,
) -> None:
    _, key_id, plaintext = await make_key(store)
    directory = KeyDirectory(store)
    store.answering = asyncio.Event()
    waiting = [asyncio.create_task(directory.authenticate(f"Bearer {plaintext}", None)) for _ in range(10)]
    for _ in range(3):
        await asyncio.sleep(0)  # each runs to its wait for the lookup: nothing else is awaited before it
    waiting[0].cancel()  # the request whose lookup it is leaves
    store.answering.set()
    async with asyncio.timeout(5):
        done = await asyncio.gather(*waiting, return_exceptions=True)
    assert isinstance(done[0], asyncio.CancelledError)
    assert [principal.key_id for principal in done[1:]] == [key_id] * 9  # type: ignore[union-attr]
    assert store.key_lookups == 1


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "missing_api_key"),
        ("Basic abc", "invalid_api_key"),
        ("Bearer sk-not-ours", "invalid_api_key"),
        ("Bearer tg-0123456789ab-wrongsecret", "invalid_api_key"),
    ],
)
async def test_bad_keys_are_401(store: CountingStore, header: str | None, code: str) -> None:
    await make_key(store)
    with pytest.raises(AuthenticationFailed) as caught:
        await KeyDirectory(store).authenticate(header, None)
    assert caught.value.code == code and caught.value.status == 401


async def test_wrong_secret_for_known_id_is_401(store: CountingStore) -> None:
    _, key_id, _ = await make_key(store)
    with pytest.raises(AuthenticationFailed):
        await KeyDirectory(store).authenticate(f"Bearer tg-{key_id}-not-the-secret", None)


async def test_unknown_ids_are_negatively_cached(store: CountingStore) -> None:
    directory = KeyDirectory(store, negative_ttl_s=60)
    for _ in range(5):
        with pytest.raises(AuthenticationFailed):
            await directory.authenticate("Bearer tg-0123456789ab-secret", None)
    assert store.key_lookups == 1


async def test_revocation_on_this_instance_is_immediate(store: CountingStore) -> None:
    _, key_id, plaintext = await make_key(store)
    directory = KeyDirectory(store)
    await directory.authenticate(f"Bearer {plaintext}", None)
    await TenancyService(store, directory, PLANS, AuditLog(store)).revoke_key(SYSTEM, key_id)
    with pytest.raises(AuthenticationFailed) as caught:
        await directory.authenticate(f"Bearer {plaintext}", None)
    assert caught.value.code == "revoked_api_key"


async def test_a_copy_read_before_the_revocation_does_not_bring_the_key_back(store: CountingStore) -> None:
    _, key_id, plaintext = await make_key(store)
    directory = KeyDirectory(store)
    await directory.authenticate(f"Bearer {plaintext}", None)
    before = await store.get_key(key_id)  # what a poll in flight read a moment before the revocation
    assert before is not None
    await TenancyService(store, directory, PLANS, AuditLog(store)).revoke_key(SYSTEM, key_id)
    directory.apply_key(before)  # ...and applies after it
    with pytest.raises(AuthenticationFailed) as caught:
        await directory.authenticate(f"Bearer {plaintext}", None)
    assert caught.value.code == "revoked_api_key"


async def test_a_copy_read_before_a_rotation_does_not_bring_the_old_secret_back(store: CountingStore) -> None:
    _, key_id, plaintext = await make_key(store)
    directory = KeyDirectory(store)
    service = TenancyService(store, directory, PLANS, AuditLog(store))
    await directory.authenticate(f"Bearer {plaintext}", None)
    before = await store.get_key(key_id)  # what a poll in flight read a moment before the rotation
    assert before is not None
    rotated = await service.rotate_key(SYSTEM, key_id, timedelta(0))
    directory.apply_key(before)  # ...and applies after it
    with pytest.raises(AuthenticationFailed):
        await directory.authenticate(f"Bearer {plaintext}", None)
    await directory.authenticate(f"Bearer {rotated.plaintext}", None)


async def test_a_poll_that_read_the_tenant_before_a_change_here_does_not_undo_it(store: CountingStore) -> None:
    _, _, plaintext = await make_key(store)
    directory = KeyDirectory(store)
    admin = TenancyService(store, directory, PLANS, AuditLog(store))
    await directory.authenticate(f"Bearer {plaintext}", None)
    await admin.update_tenant(SYSTEM, "acme", allowed_models=("sim-small",))
    in_flight = await store.changes_since(utcnow() - timedelta(seconds=5))  # a poll read the narrowed tenant...
    await admin.update_tenant(SYSTEM, "acme", all_models=True)
    store.poll_reads = in_flight
    await directory.refresh()  # ...and applies it after the tenant was opened again here
    assert (await directory.authenticate(f"Bearer {plaintext}", None)).allowed_models is None


async def test_a_poll_that_read_a_user_before_its_deactivation_does_not_bring_it_back(store: CountingStore) -> None:
    service = TenancyService(store, None, PLANS, AuditLog(store))
    await service.create_tenant(SYSTEM, "acme")
    user = await service.add_user(SYSTEM, "acme", "ann@acme.example", "Ann", Role.DEVELOPER)
    plaintext = (await service.create_key(SYSTEM, "acme", user_id=user.id)).plaintext
    directory = KeyDirectory(store)
    admin = TenancyService(store, directory, PLANS, AuditLog(store))
    await directory.authenticate(f"Bearer {plaintext}", None)
    in_flight = await store.changes_since(utcnow() - timedelta(seconds=5))
    await admin.update_user(SYSTEM, "acme", user.id, active=False)
    store.poll_reads = in_flight
    await directory.refresh()
    with pytest.raises(AuthenticationFailed) as caught:
        await directory.authenticate(f"Bearer {plaintext}", None)
    assert caught.value.code == "user_deactivated"


async def test_revocation_elsewhere_arrives_with_the_next_poll(store: CountingStore) -> None:
    other_instance, key_id, plaintext = await make_key(store)
    directory = KeyDirectory(store)
    await directory.authenticate(f"Bearer {plaintext}", None)
    await other_instance.revoke_key(SYSTEM, key_id)  # not told to this directory
    await directory.authenticate(f"Bearer {plaintext}", None)  # still cached: bounded staleness
    await directory.refresh()
    with pytest.raises(AuthenticationFailed):
        await directory.authenticate(f"Bearer {plaintext}", None)


async def test_key_created_after_a_miss_works_after_the_poll(store: CountingStore) -> None:
    service = TenancyService(store, None, PLANS, AuditLog(store))
    await service.create_tenant(SYSTEM, "acme")
    directory = KeyDirectory(store, negative_ttl_s=3600)
    created = await service.create_key(SYSTEM, "acme")
    bogus = f"Bearer tg-{created.key.id}-x"
    store._keys.pop(created.key.id)  # simulate: the first lookup ran before the insert committed
    with pytest.raises(AuthenticationFailed):
        await directory.authenticate(bogus, None)
    await store.create_key(created.key)
    await directory.refresh()
    assert (await directory.authenticate(f"Bearer {created.plaintext}", None)).key_id == created.key.id


async def test_expired_key_is_401(store: CountingStore) -> None:
    _, _, plaintext = await make_key(store, expires_at=utcnow() - timedelta(seconds=1))
    with pytest.raises(AuthenticationFailed) as caught:
        await KeyDirectory(store).authenticate(f"Bearer {plaintext}", None)
    assert caught.value.code == "expired_api_key"


async def test_suspended_tenant_is_403_and_reactivation_restores(store: CountingStore) -> None:
    _, _, plaintext = await make_key(store)
    directory = KeyDirectory(store)
    admin = TenancyService(store, directory, PLANS, AuditLog(store))
    await directory.authenticate(f"Bearer {plaintext}", None)
    await admin.update_tenant(SYSTEM, "acme", status=TenantStatus.SUSPENDED)
    with pytest.raises(PermissionDenied):
        await directory.authenticate(f"Bearer {plaintext}", None)
    await admin.update_tenant(SYSTEM, "acme", status=TenantStatus.ACTIVE)
    assert (await directory.authenticate(f"Bearer {plaintext}", None)).tenant_slug == "acme"


async def test_store_outage_keeps_cached_keys_and_answers_503_for_cold_ones(store: CountingStore) -> None:
    _, _, plaintext = await make_key(store)
    cold = (
        await TenancyService(store, None, PLANS, AuditLog(store)).create_key(SYSTEM, "acme", name="second")
    ).plaintext
    directory = KeyDirectory(store)
    await directory.authenticate(f"Bearer {plaintext}", None)
    store.down = True
    assert (await directory.authenticate(f"Bearer {plaintext}", None)).tenant_slug == "acme"
    with pytest.raises(StoreUnavailable) as caught:
        await directory.authenticate(f"Bearer {cold}", None)
    assert caught.value.status == 503


async def test_made_up_ids_cost_no_lookup_once_every_id_is_known(store: CountingStore) -> None:
    _, _, plaintext = await make_key(store)
    now = [0.0]
    directory = KeyDirectory(store, unlisted_lookups=FreshLookups(per_s=1, burst=3, clock=lambda: now[0]))
    await directory.load_ids()
    for n in range(10_000):  # a flood of made-up ids, each new
        with pytest.raises(AuthenticationFailed):
            await directory.authenticate(f"Bearer tg-{n:012x}-guessed", None)
    assert store.key_lookups == 3  # the burst of lookups for ids not listed yet; then none
    assert (await directory.authenticate(f"Bearer {plaintext}", None)).tenant_slug == "acme"  # listed: looked up
    assert store.key_lookups == 4


async def test_a_key_created_elsewhere_works_at_once_or_after_the_poll_during_a_flood(store: CountingStore) -> None:
    service, _, _ = await make_key(store)
    now = [0.0]
    lookups = FreshLookups(per_s=1, burst=1, clock=lambda: now[0])
    directory = KeyDirectory(store, negative_ttl_s=1e-9, unlisted_lookups=lookups)  # no negative cache to wait out
    await directory.load_ids()
    fresh = (await service.create_key(SYSTEM, "acme")).plaintext  # on another instance: not listed here
    assert (await directory.authenticate(f"Bearer {fresh}", None)).tenant_slug == "acme"  # the one lookup
    flooded = (await service.create_key(SYSTEM, "acme")).plaintext
    with pytest.raises(AuthenticationFailed):  # lookups spent: refused until the poll lists it
        await directory.authenticate(f"Bearer {flooded}", None)
    await directory.refresh()
    assert (await directory.authenticate(f"Bearer {flooded}", None)).tenant_slug == "acme"


def test_key_ids_hold_every_shape_and_refuse_what_no_id_can_be() -> None:
    ids = KeyIds(["0123456789ab", "i0123456789a"])
    assert ids.holds("0123456789ab") and ids.holds("i0123456789a")
    assert not ids.holds("0123456789ac") and not ids.holds("zzzzzzzzzzzz") and not ids.holds("i0123")
    for alias in ("0123456789AB", "0x23456789ab", "+123456789ab", " 123456789ab", "0_23456789ab"):
        assert not ids.holds(alias), alias  # no other spelling of an id: each would cost a lookup
    for n in range(70_000):  # past the merge point
        ids.add(f"{n:012x}")
    assert ids.holds("0123456789ab") and ids.holds(f"{69_999:012x}") and len(ids) == 70_002
