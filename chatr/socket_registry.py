"""How many WebSockets each client address and each user holds open on this instance.

One user held 20 sockets with 100 subscriptions each, one address 2,000 anonymous sockets:
every socket costs memory, a watcher task and a share of every fan-out, so both are capped.
The counts are per instance (each keeps its own; no shared state to fail): behind a load
balancer spreading sockets over N instances, a client may hold up to N times the cap.

A slot is taken when the socket is accepted (by address) and when it authenticates (by user),
and released exactly once when the socket's handler ends, however it ends (an error or a drop
mid-handshake included), so the counts cannot leak.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass
class SocketSlot:
    """One open socket's place in the counts."""

    ip: str
    user_id: int | None = None
    released: bool = False


class SocketRegistry:
    """Per-address and per-user socket counts with their caps (0: no cap), and metrics."""

    def __init__(self, *, per_ip: int, per_user: int) -> None:
        self.per_ip = per_ip
        self.per_user = per_user
        self._by_ip: Counter[str] = Counter()
        self._by_user: Counter[int] = Counter()
        self._counters = {"refused_per_ip": 0, "refused_per_user": 0, "closed_idle": 0}

    def open(self, ip: str) -> SocketSlot | None:
        """A slot for a new socket from `ip`, or None when that address holds the cap already."""
        if 0 < self.per_ip <= self._by_ip[ip]:
            self._counters["refused_per_ip"] += 1
            return None
        self._by_ip[ip] += 1
        return SocketSlot(ip)

    def claim_user(self, slot: SocketSlot, user_id: int) -> bool:
        """Count `slot` as `user_id`'s; False (and nothing counted) when they hold the cap."""
        if slot.user_id == user_id:
            return True
        if 0 < self.per_user <= self._by_user[user_id]:
            self._counters["refused_per_user"] += 1
            return False
        self._forget_user(slot)  # a second connection_init (legacy graphql-ws allows it)
        self._by_user[user_id] += 1
        slot.user_id = user_id
        return True

    def release(self, slot: SocketSlot) -> None:
        """Give the slot back; only the first call counts."""
        if slot.released:
            return
        slot.released = True
        self._forget_user(slot)
        self._by_ip[slot.ip] -= 1
        if self._by_ip[slot.ip] <= 0:
            del self._by_ip[slot.ip]

    def closed_idle(self) -> None:
        """Count an unauthenticated socket closed for idling."""
        self._counters["closed_idle"] += 1

    def _forget_user(self, slot: SocketSlot) -> None:
        if slot.user_id is None:
            return
        self._by_user[slot.user_id] -= 1
        if self._by_user[slot.user_id] <= 0:
            del self._by_user[slot.user_id]
        slot.user_id = None

    def open_for(self, *, ip: str | None = None, user_id: int | None = None) -> int:
        """Sockets open from `ip`, or of `user_id`."""
        if ip is not None:
            return self._by_ip[ip]
        return self._by_user[user_id] if user_id is not None else 0

    def metrics(self) -> dict[str, int]:
        return {
            "open": sum(self._by_ip.values()),
            "authenticated": sum(self._by_user.values()),
            **self._counters,
        }
