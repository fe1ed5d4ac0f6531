"""`techmart generate`: the command-line front of the raw data generator."""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

from techmart_assets.generator.config import GeneratorConfig
from techmart_assets.generator.engine import generate

_DEFAULTS = GeneratorConfig()


def default_out() -> Path:
    return Path(os.environ.get("TECHMART_LAKEHOUSE", "./lakehouse")) / "raw_data"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `generate` subcommand."""
    parser = subparsers.add_parser(
        "generate",
        help="write synthetic daily raw drops with labelled fraud and dirty data",
        description="Write daily raw drops under OUT/<source>/<date>/, labels.csv and _generation.json. "
        "Same seed and options give byte-identical files.",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: $TECHMART_LAKEHOUSE/raw_data, TECHMART_LAKEHOUSE=./lakehouse)",
    )
    parser.add_argument("--seed", type=int, default=_DEFAULTS.seed)
    parser.add_argument(
        "--start", type=date.fromisoformat, default=_DEFAULTS.start, help="first day (YYYY-MM-DD)"
    )
    parser.add_argument("--end", type=date.fromisoformat, default=_DEFAULTS.end, help="last day, inclusive")
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help=f"multiply the default counts ({_DEFAULTS.customers:,} customers, "
        f"{_DEFAULTS.products:,} products, {_DEFAULTS.transactions:,} transactions)",
    )
    parser.add_argument("--customers", type=int, default=None, help="number of customers (overrides --scale)")
    parser.add_argument("--products", type=int, default=None, help="number of products (overrides --scale)")
    parser.add_argument(
        "--transactions", type=int, default=None, help="number of transactions (overrides --scale)"
    )
    parser.add_argument(
        "--sessions-per-transaction",
        type=float,
        default=_DEFAULTS.sessions_per_transaction,
        help="web sessions per transaction (0: no web events)",
    )
    parser.add_argument(
        "--fraud-rate",
        type=float,
        default=_DEFAULTS.fraud_rate,
        help="expected scenarios of each fraud kind per transaction",
    )
    parser.add_argument(
        "--dirty-rate",
        type=float,
        default=_DEFAULTS.dirty_rate,
        help="expected rows of each dirty kind per transaction row",
    )
    parser.add_argument(
        "--web-dirty-rate",
        type=float,
        default=_DEFAULTS.web_dirty_rate,
        help="expected lines of each dirty kind per web event",
    )
    parser.add_argument(
        "--coupon-code-from",
        type=date.fromisoformat,
        default=None,
        help="from this day on, transactions files carry a trailing coupon_code column",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> GeneratorConfig:
    config = GeneratorConfig(
        seed=args.seed,
        start=args.start,
        end=args.end,
        sessions_per_transaction=args.sessions_per_transaction,
        fraud_rate=args.fraud_rate,
        dirty_rate=args.dirty_rate,
        web_dirty_rate=args.web_dirty_rate,
        coupon_code_from=args.coupon_code_from,
    ).scaled(args.scale)
    explicit = {
        k: getattr(args, k) for k in ("customers", "products", "transactions") if getattr(args, k) is not None
    }
    return replace(config, **explicit)


def run(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except ValueError as error:
        print(f"techmart generate: {error}", file=sys.stderr)
        return 2
    out = args.out or default_out()
    started = time.perf_counter()
    summary = generate(config, out, progress=not args.no_progress and sys.stderr.isatty())
    print(summary.report(str(out)))
    print(f"  elapsed             {time.perf_counter() - started:,.1f} s")
    return 0
