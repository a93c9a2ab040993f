"""Fuzzy matching for the model picker (pure Python, no textual).

A query matches a candidate when its characters appear in order in the candidate (case-insensitive,
spaces in the query ignored). The score prefers contiguous runs, matches at word starts (after `/`, `-`,
`_`, `.` or a digit boundary) and short candidates, so "qw3 8b" ranks `Qwen/Qwen3-8B` above
`Qwen/Qwen3-VL-8B-Instruct`.

Why not `textual.fuzzy.Matcher`: it matches the query's spaces as characters, so the way people
type model names ("qwen3 8b", "gpt oss", "ds v3") finds nothing among the catalog's names; a
test (tests/tui/test_logic.py) keeps that reason checked against the installed textual.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_SEPARATORS = frozenset("/-_. ")


@dataclass(frozen=True)
class Match:
    text: str
    score: float
    positions: tuple[int, ...]  # matched character offsets in `text`


def _word_start(text: str, i: int) -> bool:
    if i == 0:
        return True
    prev, cur = text[i - 1], text[i]
    return prev in _SEPARATORS or (prev.isalpha() and cur.isdigit())


def match(query: str, text: str) -> Match | None:
    """The best greedy alignment of `query` in `text`, or None when it does not match."""
    needle = "".join(query.lower().split())
    if not needle:
        return Match(text, 0.0, ())
    hay = text.lower()
    best: Match | None = None
    # Try each start position of the first character; keep the best-scoring alignment.
    start = hay.find(needle[0])
    while start != -1:
        positions = [start]
        j = start + 1
        ok = True
        for ch in needle[1:]:
            k = hay.find(ch, j)
            if k == -1:
                ok = False
                break
            positions.append(k)
            j = k + 1
        if not ok:
            break
        score = _score(text, positions)
        if best is None or score > best.score:
            best = Match(text, score, tuple(positions))
        start = hay.find(needle[0], start + 1)
    return best


def _score(text: str, positions: Sequence[int]) -> float:
    score = 0.0
    for n, pos in enumerate(positions):
        score += 1.0
        if n and positions[n - 1] == pos - 1:
            score += 2.0  # contiguous
        if _word_start(text, pos):
            score += 1.5
    span = positions[-1] - positions[0] + 1
    score -= 0.05 * (span - len(positions))  # gaps
    score -= 0.01 * len(text)  # shorter names first
    tail = text.rsplit("/", 1)[-1].lower()
    if tail.startswith("".join(text[p] for p in positions).lower()):
        score += 2.0
    return score


def rank(query: str, candidates: Iterable[str], limit: int | None = None) -> list[Match]:
    """Candidates that match, best first (ties keep the input order)."""
    found: list[tuple[float, int, Match]] = []
    for i, text in enumerate(candidates):
        m = match(query, text)
        if m is not None:
            found.append((-m.score, i, m))
    found.sort(key=lambda t: (t[0], t[1]))
    out = [m for _, _, m in found]
    return out[:limit] if limit is not None else out
