"""Keeping warning lists short: the first few messages and a count of the rest."""

from __future__ import annotations


def condense(messages: list[str], rest: str, shown: int = 3) -> list[str]:
    """The first ``shown`` messages plus ``rest`` formatted with ``count`` (the others)."""
    if len(messages) <= shown:
        return messages
    return messages[:shown] + [rest.format(count=len(messages) - shown)]
