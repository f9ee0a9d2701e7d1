"""`make chaos`: 200 generate commands over 60 s into 2 servers and 4 workers while processes,
Redis and GitHub fail at seeded random moments; then every guarantee is checked."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from dataclasses import replace
from pathlib import Path

from .fleet import FleetConfig
from .run import ChaosConfig, run_chaos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--seed", type=int, default=None, help="default: a random one, printed")
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=2, help="jobs per worker")
    parser.add_argument(
        "--redis",
        choices=("sentinel", "single"),
        default="sentinel",
        help="primary + replica + 3 Sentinels (failed over), or one Redis (AOF, restarted)",
    )
    parser.add_argument("--var", type=Path, default=Path("var/chaos"), help="logs, Redis, git")
    args = parser.parse_args()
    fleet = FleetConfig(
        servers=args.servers,
        workers=args.workers,
        concurrency=args.concurrency,
        redis=args.redis,
    )
    config = ChaosConfig(commands=args.commands, duration=args.duration, fleet=fleet)
    if args.seed is not None:
        config = replace(config, seed=args.seed)
    # SIGTERM unwinds like Ctrl-C, so every process the run started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"chaos: seed {config.seed} (again: --seed {config.seed})", flush=True)
    report = asyncio.run(run_chaos(config, args.var.resolve()))
    print("\n".join(report.lines()))
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
