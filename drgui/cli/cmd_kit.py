"""drgui kit export|import: the printable recovery kit, and rebuilding a plan from it on a new machine."""

from __future__ import annotations

import argparse
from pathlib import Path

from drgui.cli.common import add_command, show_help, workspace
from drgui.cli.output import read_secret
from drgui.core.plan.home import Home
from drgui.core.plan.secrets import read_secret_file


def register(sub, common) -> None:
    parser: argparse.ArgumentParser = add_command(
        sub, common, "kit", "export or import the recovery kit", lambda a, o: show_help(parser)
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    export = add_command(
        actions, common, "export", "write FILE.pdf (to print) and FILE.kit.json (to import)", run_export
    )
    export.add_argument("file", metavar="FILE.pdf")
    imp = add_command(actions, common, "import", "rebuild the plan in a NEW home from a kit", run_import)
    imp.add_argument("file", metavar="FILE", help="FILE.kit.json, or a text file with the armored identity")
    imp.add_argument("--passphrase-file", help="file holding the recovery passphrase (else prompt)")
    imp.add_argument("--plan-name", help="plan name (needed for a bare armored identity; renames otherwise)")
    imp.add_argument("--access-key-id", help="S3 access key id for the kit's S3 destinations")
    imp.add_argument("--secret-access-key-file", help="file holding the S3 secret access key")


def run_export(args, out) -> int:
    from drgui.report.kit import write_kit

    ws = workspace(args)
    pdf = Path(args.file).absolute()
    if pdf.suffix.lower() != ".pdf":
        pdf = pdf.with_name(pdf.name + ".pdf")
    files = write_kit(ws, pdf)
    out.result(
        {"ok": True, "pdf": str(files.pdf), "kit": str(files.json)},
        f"Recovery kit written: {files.pdf} (print it) and {files.json} (for `drgui kit import`).\n"
        "Keep both off this machine. The passphrase is not in them: keep it separately.",
    )
    return 0


def run_import(args, out) -> int:
    from drgui.report.kit import import_kit, read_kit_file

    kit = read_kit_file(Path(args.file), args.plan_name)
    passphrase = read_secret(args.passphrase_file, "--passphrase-file", "Recovery passphrase")
    secret_key = (
        read_secret_file(args.secret_access_key_file, "secret access key")
        if args.secret_access_key_file
        else None
    )
    result = import_kit(
        Home.resolve(args.home),
        kit,
        passphrase,
        access_key_id=args.access_key_id,
        secret_access_key=secret_key,
    )
    lines = [f"Plan '{result.plan_name}' imported into {result.home}; its key is in this machine's keyring."]
    if result.destinations:
        lines.append(f"Destinations: {', '.join(result.destinations)}. Next: `drgui snapshots`.")
    else:
        lines.append("The kit named no destination: add one with `drgui dest add`, then `drgui snapshots`.")
    if result.sources_needing_secrets:
        lines.append(
            "Before backing up from here, add these sources again with their passwords "
            f"(`drgui source remove NAME` + `drgui source add ...`): {', '.join(result.sources_needing_secrets)}."
        )
    out.result(result.to_json(), "\n".join(lines))
    return 0
