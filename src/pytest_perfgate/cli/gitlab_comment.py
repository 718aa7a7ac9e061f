"""``perfgate gitlab-comment``: create or update perfgate's note on the merge request."""

from __future__ import annotations

import argparse
import os

from ..errors import PerfgateError
from ._common import Exit


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("report", help="the Markdown report (perfgate compare --markdown)")
    parser.add_argument("--mr", metavar="IID", help="merge request iid (default: CI_MERGE_REQUEST_IID)")
    parser.add_argument(
        "--token-variable",
        default="PERFGATE_GITLAB_TOKEN",
        metavar="NAME",
        help="environment variable holding a token with the 'api' scope (default PERFGATE_GITLAB_TOKEN)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the note instead of posting it")


def run(args: argparse.Namespace) -> int:
    from ..gitlab import MAX_NOTE_CHARS, check_mr_iid, from_environment, note_body
    from ..paths import check_input

    check_input(args.report, "the Markdown report to post")  # a FIFO would block the read
    try:
        with open(args.report, "rb") as handle:
            raw = handle.read(4 * MAX_NOTE_CHARS + 1)  # a UTF-8 character is at most 4 bytes
    except OSError as exc:
        raise PerfgateError(f"{args.report}: cannot be read ({exc.strerror or exc})") from None
    try:
        report = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PerfgateError(
            f"{args.report}: is not UTF-8 text (byte {exc.start}): expected the Markdown report perfgate compare "
            "--markdown writes"
        ) from None
    body = note_body(report, args.report)  # a perfgate report, its quick-action lines neutralised
    if args.dry_run:
        print(body)
        return Exit.OK
    given, source = args.mr, "--mr"
    if given is None:
        given, source = os.environ.get("CI_MERGE_REQUEST_IID"), "CI_MERGE_REQUEST_IID"
    if not given:
        raise PerfgateError("no merge request: pass --mr IID or run in a merge-request pipeline (CI_MERGE_REQUEST_IID)")
    mr = check_mr_iid(given, source)
    action, note = from_environment(token_variable=args.token_variable).upsert_note(mr, body)
    print(f"perfgate note {note} {action} on merge request !{mr}")
    return Exit.OK
