"""The recovery kit: what a founder prints and keeps off-machine so a new computer can restore everything.

`build_kit(ws)` collects it (no secret: the identity is only present wrapped with the recovery passphrase),
`write_kit(...)` writes FILE.pdf (printable, with a QR code of the wrapped identity) and FILE.kit.json
(machine-readable), and `import_kit(...)` turns a kit, the passphrase and the S3 credentials into a
working plan in a new home. The PDF is drawn with Qt (QTextDocument + QPdfWriter); Qt is imported only
when a PDF is written, so importing a kit works without a display.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import drgui
from drgui.core.engine.catalog import list_snapshots
from drgui.core.engine.crypto import ARMOR_BEGIN, ARMOR_END, armor, dearmor, unwrap_identity
from drgui.core.engine.fsutil import atomic_write_bytes, atomic_write_text
from drgui.core.engine.snapshot import IDENTITY_FILE
from drgui.core.errors import DrguiError, UsageError
from drgui.core.ops import checklists
from drgui.core.plan import config as config_module
from drgui.core.plan.config import DestConfig, Plan, SourceConfig, format_duration
from drgui.core.plan.home import Home
from drgui.core.plan.secrets import SecretStore, require_keyring
from drgui.core.plan.workspace import IDENTITY_KEY, Workspace

KIT_FORMAT = 1
KIT_SUFFIX = ".kit.json"
# Settings whose names look like credentials are never copied into a kit, whatever a future kind stores.
# ("credentials" itself is a mode, keyring/profile/environment, and is kept.)
_SECRET_NAME = re.compile(r"pass|secret|token|access_key|session", re.IGNORECASE)
# Source settings that point at a keyring entry: after an import the entry is missing on the new machine.
SECRETS_MISSING = "secrets_missing"
_SOURCE_SECRET_FIELDS = {"postgres": ["password"], "s3": ["access_key_id", "secret_access_key"]}

RESTORE_WITH_DRGUI = [
    "Install drgui on the new machine (docs/install.md): the bundle, or `pip install drgui` with Python 3.12+.",
    "Import this kit into a new home: `drgui kit import {kit} --passphrase-file PASS.txt"
    " --access-key-id ID --secret-access-key-file SECRET.txt` (without the files it asks on a terminal).",
    "List what exists: `drgui snapshots`, then check the newest one: `drgui verify latest --deep`.",
    "Restore the database into a NEW database: `drgui restore latest --source DB --to-dsn postgresql://.../app_restore`.",
    "Restore files and the .env into new directories: `drgui restore latest --source NAME --to-dir DIR`.",
    "Prove it: `drgui drill latest` restores into a scratch PostgreSQL and compares every table with the manifest.",
    "Before backing up from this machine again: `drgui source remove NAME` and `drgui source add ...` for every"
    " source that needs a password (they are marked; `drgui backup` refuses them until then).",
]

RESTORE_BY_HAND = [
    "Only stock tools are needed: age, zstd, pg_restore, tar, git (docs/restore-by-hand.md has every step).",
    "Save the armored block of this kit as identity.age (or take PLAN_ID/identity.age from any destination;"
    " older drgui versions kept it at the destination's root).",
    "Unwrap the private key with the passphrase: `age -d -o key.txt identity.age` (keep key.txt private; delete it after).",
    "Download one snapshot directory: PLAN_ID/snapshots/<id>/ (S3: `aws s3 cp --recursive"
    " s3://BUCKET/PREFIX/PLAN_ID/snapshots/<id> .`; older snapshots may sit at snapshots/<id>/ without PLAN_ID/).",
    "Database: `age -d -i key.txt parts/DB/db.dump.zst.age | zstd -d > db.dump`, then"
    " `createdb app_restore && pg_restore -d app_restore --no-owner db.dump`"
    " (roles: `age -d -i key.txt parts/DB/globals.sql.zst.age | zstd -d | psql`).",
    "Folder: `age -d -i key.txt parts/NAME/files.tar.zst.age | zstd -d | tar -x -C restored/`.",
    "Folder or bucket in format 2 (parts/NAME/files.jsonl.zst.age, contents in PLAN_ID/packs/): decrypt that"
    " file list (one JSON line per file: path, pack, member), then `age -d -i key.txt packs/XX/PACK.age | zstd -d"
    " | tar -x` each pack once and copy each member to its path (docs/restore-by-hand.md section 4b).",
    "The .env file: `age -d -i key.txt -o .env parts/NAME/env.age`.",
    "Git: `age -d -i key.txt parts/NAME/repo.bundle.age | zstd -d > repo.bundle && git clone repo.bundle repo`.",
    "Check: manifest.age (`age -d -i key.txt snapshots/<id>/manifest.age`) lists every table's row count and every"
    " file's sha256.",
]


def _public_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings without anything that could be a credential (flags such as has_password stay)."""
    return {k: v for k, v in settings.items() if isinstance(v, bool) or not _SECRET_NAME.search(k)}


def _locations(config: DestConfig, plan_id: str) -> dict[str, Any]:
    """Where a destination's snapshots live (the plan's scope), in words a person can act on without drgui."""
    settings = config.settings
    if config.kind == "s3":
        prefix = str(settings.get("prefix", "")).strip("/")
        where = f"s3://{settings.get('bucket', '?')}/{prefix + '/' if prefix else ''}{plan_id}/snapshots/"
        extra = []
        if settings.get("endpoint_url"):
            extra.append(f"endpoint {settings['endpoint_url']}")
        if settings.get("region"):
            extra.append(f"region {settings['region']}")
        return {"where": where, "detail": ", ".join(extra)}
    if config.kind == "drive":
        label = settings.get("label") or "(no label)"
        return {
            "where": f"removable drive {label}, filesystem UUID {settings.get('uuid', '?')}",
            "detail": f"last mounted at {settings['path']}" if settings.get("path") else "",
        }
    return {
        "where": f"{settings.get('path', '?')}/{plan_id}/snapshots/",
        "detail": "a directory on the old machine",
    }


def build_kit(ws: Workspace) -> dict[str, Any]:
    """Everything a new machine needs except the passphrase and the S3 credentials."""
    plan = ws.plan
    wrapped = ws.wrapped_identity_path
    if not wrapped.exists():
        raise UsageError(
            f"{wrapped} is missing, so the kit would hold no key.",
            hint=f"Copy {plan.plan_id}/identity.age from any destination into the home.",
        )
    destinations = []
    snapshots_by_dest: dict[str, list[str]] = {}
    try:
        for row in list_snapshots(ws):
            for name in row["destinations"] if row["complete"] else []:
                snapshots_by_dest.setdefault(name, []).append(row["id"])
    except DrguiError:
        pass  # an unreachable destination must not stop the kit: the locations are what matters
    for dest in plan.destinations:
        destinations.append(
            {
                "name": dest.name,
                "kind": dest.kind,
                "settings": _public_settings(dest.settings),
                "retention": dict(dest.retention),
                **_locations(dest, plan.plan_id),
                "snapshots": snapshots_by_dest.get(dest.name, []),
            }
        )
    sources = []
    for source in plan.sources:
        settings = _public_settings(source.settings)
        settings.pop(SECRETS_MISSING, None)
        sources.append({"name": source.name, "kind": source.kind, "settings": settings})
    try:
        runbooks = [{"id": c.id, "title": c.title, "when": c.when} for c in checklists.load_all().values()]
    except DrguiError:
        runbooks = []
    return {
        "format": KIT_FORMAT,
        "kind": "drgui-recovery-kit",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "drgui_version": drgui.__version__,
        "plan": {
            "id": plan.plan_id,
            "name": plan.name,
            "recipient": plan.recipient,
            "rto": format_duration(plan.rto_seconds),
            "rpo": format_duration(plan.rpo_seconds),
            "rto_seconds": plan.rto_seconds,
            "rpo_seconds": plan.rpo_seconds,
            "created": plan.created,
            "schedule": dict(plan.schedule),
        },
        "identity_age_armored": armor(wrapped.read_bytes()),
        "destinations": destinations,
        "sources": sources,
        "contacts": [dict(c) for c in plan.contacts],
        "runbooks": runbooks,
        "restore_with_drgui": list(RESTORE_WITH_DRGUI),
        "restore_by_hand": list(RESTORE_BY_HAND),
    }


def kit_json_path(pdf_path: Path) -> Path:
    name = pdf_path.name[: -len(".pdf")] if pdf_path.name.lower().endswith(".pdf") else pdf_path.name
    return pdf_path.with_name(name + KIT_SUFFIX)


@dataclass
class KitFiles:
    pdf: Path
    json: Path
    kit: dict[str, Any] = field(repr=False)


def write_kit(ws: Workspace, pdf_path: Path) -> KitFiles:
    kit = build_kit(ws)
    json_path = kit_json_path(pdf_path)
    atomic_write_text(json_path, json.dumps(kit, indent=1, sort_keys=True) + "\n")
    atomic_write_bytes(pdf_path, render_pdf(kit, json_path.name), 0o644)
    ws.history.append_event("kit.export", {"pdf": str(pdf_path), "json": str(json_path)})
    return KitFiles(pdf_path, json_path, kit)


# --- PDF -------------------------------------------------------------------------------------------


def qr_png(text: str) -> bytes:
    import io

    import segno

    buffer = io.BytesIO()
    segno.make(text, error="m", micro=False).save(buffer, kind="png", scale=4, border=4)
    return buffer.getvalue()


def kit_html(kit: dict[str, Any], kit_name: str = "FILE.kit.json") -> str:
    e = html.escape
    plan = kit["plan"]
    rows = []
    for dest in kit["destinations"]:
        count = len(dest.get("snapshots", []))
        newest = dest["snapshots"][-1] if dest.get("snapshots") else "none seen at export"
        rows.append(
            f"<tr><td><b>{e(dest['name'])}</b> ({e(dest['kind'])})</td><td>{e(dest['where'])}"
            f"{'<br/>' + e(dest['detail']) if dest.get('detail') else ''}</td>"
            f"<td>{count} snapshot(s); newest {e(newest)}</td></tr>"
        )
    sources = "".join(
        f"<li><b>{e(s['name'])}</b> ({e(s['kind'])}){_source_hint(s)}</li>" for s in kit["sources"]
    )
    contacts = (
        "".join(
            "<li>" + e(" · ".join(str(v) for v in contact.values() if v)) + "</li>"
            for contact in kit["contacts"]
        )
        or "<li>None recorded. Add them to config.toml under [[contacts]] (name, role, phone, email).</li>"
    )
    runbooks = (
        "".join(f"<li>{e(r['title'])} <i>({e(r['id'])})</i></li>" for r in kit["runbooks"]) or "<li>none</li>"
    )
    with_drgui = "".join(f"<li>{e(step.format(kit=kit_name))}</li>" for step in kit["restore_with_drgui"])
    by_hand = "".join(f"<li>{e(step)}</li>" for step in kit["restore_by_hand"])
    armored = e(kit["identity_age_armored"].strip())
    return f"""
<html><body style="font-family: 'DejaVu Sans', sans-serif; font-size: 9pt;">
<h1 style="font-size: 17pt;">Recovery kit: {e(plan["name"])}</h1>
<p>Plan id <b>{e(plan["id"])}</b> · written {e(kit["created"])} by drgui {e(kit["drgui_version"])} ·
targets: restore within <b>{e(plan["rto"])}</b> (RTO), lose at most <b>{e(plan["rpo"])}</b> of data (RPO).</p>
<p style="background-color: #fff4d6; padding: 4px;"><b>Keep this paper somewhere other than the computer.</b>
It holds the plan's private key, encrypted with the recovery passphrase. The passphrase is NOT in here:
keep it separately (a password manager and a sealed envelope). Storage credentials are not in here either;
get them from the provider's console.</p>
<h2 style="font-size: 12pt;">Where the backups are</h2>
<table border="1" cellspacing="0" cellpadding="3" width="100%">
<tr><th align="left">Destination</th><th align="left">Location</th><th align="left">Snapshots</th></tr>
{"".join(rows) or "<tr><td colspan='3'>No destination configured.</td></tr>"}
</table>
<p>Each destination also holds it as {e(plan["id"])}/identity.age (the same encrypted key).</p>
<h2 style="font-size: 12pt;">What is backed up</h2>
<ul>{sources or "<li>none</li>"}</ul>
<h2 style="font-size: 12pt;">Restore with drgui</h2>
<ol>{with_drgui}</ol>
<h2 style="font-size: 12pt;">Restore by hand (stock tools)</h2>
<ol>{by_hand}</ol>
<h2 style="font-size: 12pt;">Emergency contacts</h2>
<ul>{contacts}</ul>
<h2 style="font-size: 12pt;">Runbooks</h2>
<ul>{runbooks}</ul>
<h2 style="font-size: 12pt;">The encrypted key (identity.age)</h2>
<p>Public key (recipient): <span style="font-family: 'DejaVu Sans Mono', monospace;">{e(plan["recipient"])}</span></p>
<p>Scan the code, or type the block below into a file named identity.age (import it with
<tt>drgui kit import identity.age --plan-name "{e(plan["name"])}"</tt>), then open it with the passphrase.</p>
<p align="center"><img src="kit-qr.png" width="220" height="220"/></p>
<pre style="font-family: 'DejaVu Sans Mono', monospace; font-size: 8pt;">{armored}</pre>
</body></html>
"""


def _source_hint(source: dict[str, Any]) -> str:
    settings = source["settings"]
    for key in ("path", "bucket", "host", "dbname"):
        if settings.get(key):
            return f": {html.escape(key)} {html.escape(str(settings[key]))}"
    return ""


def _ensure_gui_application():
    import os

    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance()
    if app is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = QGuiApplication(["drgui-kit"])
    return app


def render_pdf(kit: dict[str, Any], kit_name: str | None = None) -> bytes:
    """The kit as an A4 PDF (QTextDocument laid out by QPdfWriter); returns the bytes."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QMarginsF, QUrl
    from PySide6.QtGui import QImage, QPageLayout, QPageSize, QPdfWriter, QTextDocument

    _app = _ensure_gui_application()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    writer = QPdfWriter(buffer)
    writer.setTitle(f"drgui recovery kit: {kit['plan']['name']}")
    writer.setCreator(f"drgui {drgui.__version__}")
    writer.setResolution(300)
    writer.setPageLayout(
        QPageLayout(
            QPageSize(QPageSize.PageSizeId.A4),
            QPageLayout.Orientation.Portrait,
            QMarginsF(15, 15, 15, 15),
            QPageLayout.Unit.Millimeter,
        )
    )
    document = QTextDocument()
    # PySide6 6.12 accepts the format only as str at runtime (bytes raises ValueError); its stub says bytes
    image = QImage.fromData(qr_png(kit["identity_age_armored"]), "PNG")  # type: ignore[arg-type]
    document.addResource(QTextDocument.ResourceType.ImageResource, QUrl("kit-qr.png"), image)
    document.setHtml(kit_html(kit, kit_name or "FILE.kit.json"))
    document.print_(writer)
    del writer
    buffer.close()
    return bytes(data.data())


# --- import ----------------------------------------------------------------------------------------


@dataclass
class ImportResult:
    plan_id: str
    plan_name: str
    home: Path
    destinations: list[str]
    sources_needing_secrets: list[str]
    credentials_stored_for: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": True,
            "plan": {"id": self.plan_id, "name": self.plan_name},
            "home": str(self.home),
            "destinations": self.destinations,
            "sources_needing_secrets": self.sources_needing_secrets,
            "credentials_stored_for": self.credentials_stored_for,
        }


def read_kit_file(path: Path, plan_name: str | None = None) -> dict[str, Any]:
    """A kit JSON, or a text file holding only the armored identity (then `plan_name` names the plan)."""
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"Cannot read the kit {path}: {error}.") from None
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            kit = json.loads(stripped)
        except json.JSONDecodeError as error:
            raise UsageError(
                f"{path} is not valid JSON: {error}.", hint="Use the .kit.json drgui wrote."
            ) from None
        if kit.get("kind") != "drgui-recovery-kit" or not isinstance(kit.get("plan"), dict):
            raise UsageError(f"{path} is not a drgui recovery kit.")
        if int(kit.get("format", 0)) > KIT_FORMAT:
            raise UsageError(
                f"{path} was written by a newer drgui (kit format {kit['format']}).", hint="Update drgui."
            )
        if plan_name:
            kit["plan"]["name"] = plan_name
        return kit
    start, end = stripped.find(ARMOR_BEGIN), stripped.find(ARMOR_END)
    if start < 0 or end < 0:
        raise UsageError(
            f"{path} holds neither a kit nor an armored age block.",
            hint="Pass FILE.kit.json, or a text file with the block from BEGIN AGE ENCRYPTED FILE to END.",
        )
    if not plan_name:
        raise UsageError("A bare identity block needs --plan-name.", hint="Pass --plan-name NAME.")
    return {
        "format": KIT_FORMAT,
        "kind": "drgui-recovery-kit",
        "plan": {"id": Plan.new_id(), "name": plan_name},
        "identity_age_armored": stripped[start : end + len(ARMOR_END)] + "\n",
        "destinations": [],
        "sources": [],
        "contacts": [],
    }


def _source_from_kit(raw: dict[str, Any]) -> tuple[SourceConfig, bool]:
    settings = _public_settings(dict(raw.get("settings", {})))
    kind = str(raw["kind"])
    missing = [
        f for f in _SOURCE_SECRET_FIELDS.get(kind, []) if kind != "postgres" or settings.get("has_password")
    ]
    if kind == "postgres":
        settings["has_password"] = False
    if missing:
        settings[SECRETS_MISSING] = missing
    return SourceConfig(str(raw["name"]), kind, settings), bool(missing)


def import_kit(
    home: Home,
    kit: dict[str, Any],
    passphrase: str,
    *,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
) -> ImportResult:
    """Recreate the plan in a NEW home: key into the keyring, identity.age, config, S3 credentials."""
    if home.exists():
        raise UsageError(
            f"{home.path} already holds a plan.", hint="Import into a new home: pass another --home."
        )
    wrapped = dearmor(kit["identity_age_armored"].encode("ascii"))
    pair = unwrap_identity(wrapped, passphrase)  # wrong passphrase: UsageError (exit 2)
    info = kit["plan"]
    recipient = info.get("recipient") or pair.recipient
    if recipient != pair.recipient:
        raise UsageError(
            "The key in this kit does not belong to its plan (the public keys differ).",
            hint="The kit was edited or mixed with another plan's; use an untouched kit.",
        )
    s3_dests = [d for d in kit.get("destinations", []) if d.get("kind") == "s3"]
    if (access_key_id is None) != (secret_access_key is None):
        raise UsageError("Pass both --access-key-id and --secret-access-key-file, or neither.")
    if access_key_id and not s3_dests:
        raise UsageError(
            "The kit has no S3 destination to store the credentials for.",
            hint="Add the bucket with `drgui dest add NAME s3 ...` after the import.",
        )
    require_keyring()
    plan = Plan(
        plan_id=str(info["id"]),
        name=str(info["name"]),
        recipient=pair.recipient,
        rto_seconds=int(info.get("rto_seconds", 4 * 3600)),
        rpo_seconds=int(info.get("rpo_seconds", 24 * 3600)),
        created=str(info.get("created", "")),
    )
    if info.get("schedule"):
        plan.schedule.update(info["schedule"])
    plan.contacts = [dict(c) for c in kit.get("contacts", [])]
    needing = []
    for raw in kit.get("sources", []):
        source, needs_secret = _source_from_kit(raw)
        plan.sources.append(source)
        if needs_secret:
            needing.append(source.name)
    for raw in kit.get("destinations", []):
        settings = _public_settings(dict(raw.get("settings", {})))
        if raw.get("kind") == "s3" and access_key_id:
            settings["credentials"] = "keyring"  # where the import stores the keys given to it
        plan.destinations.append(
            DestConfig(str(raw["name"]), str(raw["kind"]), settings, dict(raw.get("retention", {})))
        )
    home.ensure()
    store = SecretStore(plan.plan_id, home.create_home_id())  # a new home: never the legacy names
    store.set(*IDENTITY_KEY, pair.identity)
    stored_for = []
    if access_key_id and secret_access_key:
        for raw in s3_dests:
            store.set("dest", raw["name"], "access_key_id", access_key_id)
            store.set("dest", raw["name"], "secret_access_key", secret_access_key)
            stored_for.append(raw["name"])
    home.ensure()
    atomic_write_bytes(home.path / IDENTITY_FILE, wrapped, 0o600)
    config_module.save(home, plan)
    ws = Workspace(home, plan)
    ws.history.append_event(
        "kit.import",
        {"plan": plan.plan_id, "name": plan.name, "destinations": [d.name for d in plan.destinations]},
    )
    return ImportResult(
        plan.plan_id, plan.name, home.path, [d.name for d in plan.destinations], needing, stored_for
    )
