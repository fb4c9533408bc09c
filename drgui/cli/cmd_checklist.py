"""drgui checklist list | run NAME: walk a runbook without a terminal dialogue.

`run` evaluates the automatic checks from the history, ticks the items given with --tick (as --by),
saves the run in the history, prints the progress and can export the record as Markdown.
"""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from pathlib import Path

from drgui.cli.common import add_command, workspace
from drgui.core.engine.fsutil import atomic_write_text
from drgui.core.ops import autochecks, checklists
from drgui.core.ops.drill import checklist_variables


def register(sub, common) -> None:
    parser = add_command(sub, common, "checklist", "list the runbooks, or run one", _usage)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    listing = actions.add_parser("list", parents=[common], help="the checklists and when to use them")
    listing.set_defaults(handler=run_list)
    running = actions.add_parser(
        "run", parents=[common], help="evaluate the automatic checks and tick items, non-interactively"
    )
    running.add_argument("name", help="checklist id, e.g. weekly-review or monthly-restore-test")
    running.add_argument(
        "--tick", action="append", default=[], metavar="ITEM", help="mark a manual item done (repeatable)"
    )
    running.add_argument("--by", default=None, help="who ticks the items (default: the login name)")
    running.add_argument("--note", default=None, help="a note recorded with the ticked items")
    running.add_argument("--markdown", metavar="FILE", help="also write the record as Markdown")
    running.set_defaults(handler=run_checklist)


def _usage(args, out) -> int:
    from drgui.core.errors import UsageError

    raise UsageError("Say what to do: `drgui checklist list` or `drgui checklist run NAME`.")


def _extra_dirs(ws) -> list[Path]:
    return [ws.home.path / "checklists"]


def run_list(args, out) -> int:
    ws = workspace(args)
    found = checklists.load_all(_extra_dirs(ws))
    rows = [
        {
            "id": c.id,
            "title": c.title,
            "when": c.when,
            "items": len(c.items),
            "checks": list(c.checks),
        }
        for c in found.values()
    ]
    human = "\n".join(f"{r['id']:<24} {r['title']} ({r['when']})" for r in rows)
    out.result(rows, human)
    return 0


def run_checklist(args, out) -> int:
    ws = workspace(args)
    now = datetime.now(UTC)
    checklist = checklists.load(args.name, checklist_variables(ws), _extra_dirs(ws))
    run_id = ws.history.start_run("checklist", target=checklist.id)
    out.info(f"{checklist.title}: evaluating {len(checklist.checks)} automatic check(s)")
    auto = autochecks.evaluate(ws, checklist.checks, now)
    run = checklists.ChecklistRun(checklist=checklist, started=now)
    run.apply_auto(auto, now)
    by = args.by or getpass.getuser()
    try:
        for item_id in args.tick:
            run.tick(item_id, by, now, args.note)
    except BaseException:
        ws.history.finish_run(run_id, "failed", detail={"checklist": checklist.id, "error": "bad --tick"})
        raise
    done, total = run.progress
    ws.history.finish_run(
        run_id, "ok" if run.complete else "partial", detail={"checklist": checklist.id, "run": run.to_dict()}
    )
    if args.markdown:
        atomic_write_text(Path(args.markdown), run.to_markdown(), 0o644)
    lines = [f"{checklist.title}: {done} of {total} done"]
    for item in checklist.items:
        state = run.states[item.id]
        mark = "x" if state.done else " "
        extra = f"  ({state.detail})" if state.detail else (f"  (by {state.by})" if state.by else "")
        lines.append(f"  [{mark}] {item.id}: {item.text}{extra}")
    failed_auto = [i.id for i in checklist.items if i.kind == "auto" and not run.states[i.id].done]
    out.result(
        {
            "ok": not failed_auto,
            "checklist": checklist.id,
            "done": done,
            "total": total,
            "complete": run.complete,
            "run": run.to_dict(),
            "markdown": args.markdown,
        },
        "\n".join(lines),
    )
    return 0 if not failed_auto else 1
