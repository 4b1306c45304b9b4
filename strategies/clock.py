"""Time in one place: the database stores naive UTC, Redis epoch milliseconds, the API ISO 8601."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Naive UTC now: the database stores UTC without a zone."""
    return datetime.now(UTC).replace(tzinfo=None)


def naive_utc(value: datetime) -> datetime:
    """A zone-aware time converted to naive UTC; a naive one is taken as UTC already."""
    return value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)


def iso(value: datetime | None) -> str | None:
    """A stored naive-UTC time as ISO 8601 with its zone."""
    return None if value is None else value.replace(tzinfo=UTC).isoformat()


def epoch_s(value: datetime) -> float:
    """A naive-UTC time as epoch seconds."""
    return value.replace(tzinfo=UTC).timestamp()


def epoch_ms(value: datetime | None) -> int:
    """A naive-UTC time as epoch milliseconds; 0 for none."""
    return 0 if value is None else int(epoch_s(value) * 1000)


def from_epoch_ms(value: int) -> datetime | None:
    """Epoch milliseconds as a naive-UTC time; None for 0."""
    return from_epoch_us(value * 1000) if value else None


def from_epoch_us(value: float) -> datetime:
    """Epoch microseconds (a queue entry's score) as a naive-UTC time."""
    return datetime.fromtimestamp(value / 1e6, UTC).replace(tzinfo=None)
