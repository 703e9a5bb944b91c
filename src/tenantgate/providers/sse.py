"""Server-sent events cut where they end, whatever the network's cuts (for the translating adapters;
the pass-through path forwards whole runs of events without splitting them, openai_usage.py)."""

from __future__ import annotations

EVENT_END = b"\n\n"
MAX_PENDING = 4 * 1024 * 1024  # an event this long without its end is not an event stream


class EventSplitter:
    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> list[bytes]:
        """The events `data` completes, without their blank line; CRLF line ends read as LF.
        ValueError when what waits for its end grows past MAX_PENDING."""
        buffer = self._pending + data if self._pending else data
        if b"\r" in buffer:  # a CR kept at the end of what is pending meets its LF here
            buffer = buffer.replace(b"\r\n", b"\n")
        end = buffer.rfind(EVENT_END)
        if end < 0:
            if len(buffer) > MAX_PENDING:
                raise ValueError(f"an event longer than {MAX_PENDING} bytes")
            self._pending = buffer
            return []
        ready, self._pending = buffer[:end], buffer[end + len(EVENT_END) :]
        return [event for event in ready.split(EVENT_END) if event.strip()]

    def rest(self) -> list[bytes]:
        """What was left without its blank line when the stream ended."""
        rest, self._pending = self._pending, b""
        return [rest] if rest.strip() else []
