"""``perfgate history``: the change points of every series in a baseline directory's history
(docs/history.md).

Exit codes: 0 judged (also with change points, or nothing to judge yet); 1 with
``--fail-on-regression`` when a series' newest level is a regression (an open regression change
point); 2 bad input (not a baseline directory, a corrupt history file, a bad option).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..options import positive_int
from ._common import Exit

if TYPE_CHECKING:
    from ..history.model import History


#: the variable --alert reads its token from unless --token-variable names another
TOKEN_VARIABLE = "PERFGATE_GITLAB_TOKEN"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``perfgate history`` (one place: other outputs add theirs here)."""
    parser.add_argument("baseline", metavar="BASELINE_DIR", help="the baseline directory (its history.jsonl)")
    parser.add_argument("--json", metavar="PATH", help="also write the judged history as JSON (perfgate-history v1)")
    parser.add_argument(
        "--metric",
        action="append",
        metavar="NAME",
        help="only series of this metric (median, instructions, alloc_blocks, alloc_bytes, mem_peak, ...); repeatable",
    )
    parser.add_argument("--since", type=positive_int, metavar="N", help="only the history's runs numbered N and later")
    parser.add_argument("--all", action="store_true", help="list every series, not only those with change points")
    parser.add_argument(
        "--fail-on-regression",
        action="store_true",
        help="exit 1 when a series' newest level is a regression (an open regression change point)",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="judge every series whole again (by default each series is continued from the last judging, "
        "history.state.json: only its last 250 runs and the runs since are read and examined)",
    )
    parser.add_argument(
        "--rebuild",
        action="store_true",
        help="first write the history file from the directory's stored runs (only when it has none)",
    )
    # the trend site and the alerts (history/site.py, history/alerts.py)
    parser.add_argument(
        "--html", metavar="DIR", help="also write the static trend site into DIR (for GitLab Pages: public/)"
    )
    parser.add_argument(
        "--alert",
        choices=["gitlab"],
        help="open (or note, or close) one GitLab issue per series whose newest level moved (default branch only)",
    )
    parser.add_argument("--dry-run", action="store_true", help="with --alert: print what it would do (no token needed)")
    parser.add_argument(
        "--token-variable",
        default=TOKEN_VARIABLE,
        metavar="NAME",
        help="with --alert: environment variable holding a token with the 'api' scope (default PERFGATE_GITLAB_TOKEN)",
    )


def judged(args: argparse.Namespace) -> History:
    """The :class:`~pytest_perfgate.history.model.History` the arguments ask for (after
    ``--rebuild``), with the checks of ``--json`` made first."""
    from ..errors import GateError
    from ..history.analyse import judge_directory, rebuild
    from ..paths import check_output

    if args.json is not None:
        check_output(args.json, "the history JSON", perfgate_only=True)
    if args.html is not None:  # before the judging, which takes seconds on a long history
        check_output(args.html, "the trend site", directory=True)
    if (args.dry_run or args.token_variable != TOKEN_VARIABLE) and args.alert is None:
        raise GateError("--dry-run and --token-variable go with --alert gitlab: without it nothing is sent or printed")
    if args.rebuild:
        count = rebuild(args.baseline)
        print(f"rebuilt the history of {args.baseline} from its {count} stored run(s)")
    history, notes = judge_directory(
        args.baseline,
        metrics=set(args.metric) if args.metric else None,
        since=args.since,
        whole=args.json is not None or args.html is not None,  # every point written or plotted
        full=args.full,
    )
    for note in notes:
        print(f"history: {note}")
    return history


def run(args: argparse.Namespace) -> int:
    from ..history.model import write_history
    from ..reports.history_text import format_history

    history = judged(args)
    print("\n".join(format_history(history, every_series=args.all)))
    if args.json is not None:
        write_history(history, args.json)
        print(f"history JSON: {args.json}")
    if args.html is not None:
        import os

        from ..history.alerts import project_url_from
        from ..reports.history_site import render_site

        pages = render_site(history, args.html, project_url=project_url_from(os.environ))
        print(f"trend site: {pages[0]} ({len(pages) - 1} series pages)")
    if args.alert == "gitlab":
        from ..history.alerts import alert_gitlab

        alert_gitlab(history, dry_run=args.dry_run, token_variable=args.token_variable)
    if args.fail_on_regression and any(cp.is_regression for cp in history.open_change_points()):
        return Exit.FAILED
    return Exit.OK
