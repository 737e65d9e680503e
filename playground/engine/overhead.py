"""How much the engine adds per token: ``python -m playground.engine.overhead [--json PATH]``.

The fastest runtime here makes thousands of tokens per second on the demo model, so the
per-token path (TokenMeter.__call__) must cost well under a microsecond or two; this
measures it as the median of several repeats, and the cost of one batch flush over a
real worker connection.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from multiprocessing import Pipe
from pathlib import Path

from playground.engine.protocol import Tokens, decode, encode
from playground.engine.token_meter import TokenMeter


def per_token_ns(tokens: int, repeats: int) -> list[float]:
    results = []
    stop = threading.Event()
    ids = [42]  # one token id per call, as the adapters hand them over
    for _ in range(repeats):
        meter = TokenMeter(lambda text, count, at: None, stop, flush_interval=0.05)
        started = time.perf_counter_ns()
        for _ in range(tokens):
            meter("tok", 1, ids)
        results.append((time.perf_counter_ns() - started) / tokens)
    return results


def flush_us(batches: int, repeats: int) -> list[float]:
    """One batch of ~250 tokens of text encoded, pickled over a socket pair and decoded, as the worker
    and the engine do."""
    sender, receiver = Pipe()
    results = []
    text = "token " * 250
    for _ in range(repeats):
        started = time.perf_counter_ns()
        for index in range(batches):
            sender.send(encode(Tokens(text, index, 0.0)))
            decode(receiver.recv())
        results.append((time.perf_counter_ns() - started) / batches / 1000)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    token_ns = per_token_ns(args.tokens, args.repeats)
    batch_us = flush_us(2000, args.repeats)
    result = {
        "per_token_ns_median": statistics.median(token_ns),
        "per_token_ns_min": min(token_ns),
        "per_token_ns_max": max(token_ns),
        "per_batch_send_us_median": statistics.median(batch_us),
        "tokens": args.tokens,
        "repeats": args.repeats,
    }
    print(
        f"per token: {result['per_token_ns_median']:.0f} ns median "
        f"({result['per_token_ns_min']:.0f}-{result['per_token_ns_max']:.0f}) over {args.repeats} repeats"
    )
    print(
        f"per batch (send + receive, 250 tokens of text): {result['per_batch_send_us_median']:.1f} us median"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
