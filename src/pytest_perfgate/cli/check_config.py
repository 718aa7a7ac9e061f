"""``perfgate check-config``: validate a perfgate.yml and list its KPIs."""

from __future__ import annotations

import argparse

from ._common import Exit


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", default="perfgate.yml", help="the KPI file (default: perfgate.yml)")


def run(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..paths import check_input
    from ..units import format_value

    check_input(args.path, "a perfgate.yml (YAML file)")  # a FIFO would block the read
    config = load_config(args.path)
    print(f"{args.path}: valid; {len(config.kpis)} KPIs, {len(config.metrics)} custom metrics")
    for kpi in config.kpis.values():
        levels = []
        for b in kpi.budgets:
            target, critical = (
                "-" if v is None else format_value(v, b.kind) if b.kind else str(v) for v in (b.target, b.critical)
            )
            levels.append(f"{b.metric} target {target} critical {critical}")
        print(f"  {kpi.name}: " + "; ".join(levels))
    return Exit.OK
