"""What a running comparison tells its caller (the web UI, the benchmark CLI, tests)."""

from __future__ import annotations

from dataclasses import dataclass

from playground.engine.records import RunRecord

# Lane states, in order: queued, starting, converting, loading, generating, then done / stopped / error.


@dataclass
class LaneEvent:
    lane: str  # BackendSpec.key
    kind: str  # "state" | "tokens" | "result" | "error" | "worker" | "agreement"
    state: str = ""
    message: str = ""
    text: str = ""  # kind == "tokens": text generated since the previous tokens event
    tokens: int = 0  # kind == "tokens": tokens generated so far in this run
    elapsed_s: float = 0.0  # kind == "tokens": seconds since this run's generate() started
    run: int = 0  # 1-based measured run, 0 for warm-up
    prompt_index: int = 0
    pid: int = 0  # kind == "worker": the worker process (0 when it ended)
    # kind == "result" (and "error" for a failed run); kind == "agreement": an earlier record whose
    # agreement with the reference changed (the reference finished after it, or a new peer arrived)
    record: RunRecord | None = None
