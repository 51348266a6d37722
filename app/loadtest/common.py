"""What the simulated participants share: pace, choices, and the record of one run."""
from __future__ import annotations

import asyncio
import random
import re
import time
from dataclasses import dataclass, field

TIMING = re.compile(r"(\w+);dur=([0-9.]+)")
ATTENTION = re.compile(r'select\s+"([^"]+)"', re.IGNORECASE)


@dataclass
class Pace:
    """Think time before each click, uniform in [low, high] seconds (0, 0: flat out)."""
    low: float = 3.0
    high: float = 8.0

    async def think(self, rng: random.Random) -> None:
        if self.high > 0:
            await asyncio.sleep(rng.uniform(self.low, self.high))


def choose(question: str, options: list[tuple[str, str]], rng: random.Random) -> str:
    """(label, value) options -> the value a careful participant clicks: what an attention
    check asks for (it names the label in quotes), otherwise any option."""
    asked = ATTENTION.search(question or "")
    if asked:
        for label, value in options:
            if label.strip() == asked.group(1).strip():
                return value
    return rng.choice(options)[1]


@dataclass
class Record:
    """What one simulated participant saw."""
    worker_id: str
    clicks: list[float] = field(default_factory=list)        # click -> next question shown (s)
    phases: list[dict] = field(default_factory=list)         # per click: where its time went (s)
    acked: list[str] = field(default_factory=list)           # item ids whose answer the server took
    double_clicks: int = 0
    finished: bool = False
    code: str = ""
    error: str = ""
    started_at: float = field(default_factory=time.monotonic)


def server_timing(header: str) -> dict[str, float]:
    """`Server-Timing: queue;dur=1.2, app;dur=8.0` -> {"queue": 0.0012, "app": 0.008} (seconds)."""
    return {name: float(ms) / 1000 for name, ms in TIMING.findall(header or "")}
