"""Changes every instance must see at once, told through Redis pub/sub: a key, tenant or user changed
(each instance re-reads its directory's changes from the database now, rather than at its next
poll), a deployment drained or resumed (kept in Redis too, for instances that start later), and a
deployment's circuit opened or closed.

Best effort on top of what already holds without it: the directory's poll every `key_refresh_s`
stays the fallback, so a lost message or a Redis outage delays a change by at most that interval.
Without Redis the bus tells only this instance.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)
CHANNEL = "tg1:changes"
DRAINING = "tg1:draining"  # hash: deployment -> "1" while drained
KEYS = "keys"
RETRY_S = 1.0

Handler = Callable[[str], Awaitable[None]]


class ChangeBus:
    def __init__(self, redis: Redis | None, listening: Redis | None = None) -> None:
        self._redis = redis  # bounded calls: publish, the drained set
        self._listening = listening or redis  # the subscription, which waits for messages as long as it takes
        self._sending: set[asyncio.Task[None]] = set()
        self._keys_told: asyncio.Task[None] | None = None  # one "keys changed" on its way tells of many

    @classmethod
    def from_url(cls, url: str | None, timeout_s: float) -> ChangeBus:
        if url is None:
            return cls(None)
        from redis.asyncio import Redis  # here: without Redis its client is never loaded (0.2 s of a start)

        bounded = Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        return cls(bounded, Redis.from_url(url, socket_connect_timeout=timeout_s, health_check_interval=30))

    def keys_changed(self) -> None:
        """Called where a key, tenant or user was changed (synchronously: it sends in the background).
        Changes made while one message is on its way share it (revoking a user's keys tells once)."""
        if self._keys_told is None or self._keys_told.done():
            self._keys_told = self._send(KEYS)

    async def drained(self, deployment: str, draining: bool) -> None:
        if self._redis is None:
            return
        try:
            if draining:
                await self._redis.hset(DRAINING, deployment, "1")
            else:
                await self._redis.hdel(DRAINING, deployment)
        except Exception:  # noqa: BLE001 - told here only; the operator's call still succeeded here
            log.warning("could not keep deployment %s's drain in Redis; other instances are not told", deployment)
            return
        self._send(("drain:" if draining else "resume:") + deployment)

    def circuit(self, deployment: str, opened: bool) -> None:
        """A deployment's circuit opened or its trial closed it here (sent in the background)."""
        self._send(("circuit:" if opened else "closed:") + deployment)

    async def draining(self) -> list[str]:
        """The deployments drained on any instance (read at start-up)."""
        if self._redis is None:
            return []
        try:
            names = await self._redis.hkeys(DRAINING)
        except Exception:  # noqa: BLE001 - start without them; an operator can drain again
            log.warning("could not read drained deployments from Redis")
            return []
        return [name.decode() if isinstance(name, bytes) else str(name) for name in names]

    def _send(self, message: str) -> asyncio.Task[None] | None:
        if self._redis is None:
            return None
        task = asyncio.get_running_loop().create_task(self._publish(message))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)
        return task

    async def _publish(self, message: str) -> None:
        assert self._redis is not None
        try:
            await self._redis.publish(CHANNEL, message)
        except Exception:  # noqa: BLE001 - the others' poll brings the change within key_refresh_s
            log.warning("could not tell other instances of a change (%s); their next poll brings it", message)

    async def listen(self, handle: Handler) -> None:
        """Handle every message (this instance's own too) until cancelled; reconnect after a failure."""
        if self._listening is None:
            return
        while True:
            try:
                async with self._listening.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    while True:
                        message = await pubsub.get_message(timeout=RETRY_S * 5)
                        if message is not None and isinstance(message.get("data"), bytes):
                            await _handled(handle, message["data"].decode())
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - Redis went away: listen again once it is back
                log.warning("lost the change channel in Redis; listening again in %.0f s", RETRY_S)
                await asyncio.sleep(RETRY_S)

    async def close(self) -> None:
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
        for client in {self._redis, self._listening} - {None}:
            assert client is not None
            await client.aclose()


async def _handled(handle: Handler, message: str) -> None:
    """A change this instance could not take in now (its database is down, say) comes with its poll."""
    try:
        await handle(message)
    except Exception:  # noqa: BLE001 - keep listening: the poll is the fallback
        log.warning("could not take in a change told on the bus (%s); the next poll brings it", message)
