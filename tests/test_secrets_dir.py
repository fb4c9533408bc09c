"""Secrets on a headless server (issue 16, item 1): `--secrets-dir` and systemd credentials, no keyring at all.

Every run here has no usable keyring (PYTHON_KEYRING_BACKEND names keyring's `fail` backend and there is no
D-Bus session), so a pass proves the keyring is never consulted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from drgui.core.pg.pgtools import EmbeddedCluster
from tests.engine_fixtures import PASSPHRASE, ok, run_cli, write_folder
from tests.pg_fixtures import PG_PASSWORD, temporary_database
from tests.support import need

NO_KEYRING = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring", "DBUS_SESSION_BUS_ADDRESS": ""}


def _secrets_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "secrets"
    folder.mkdir(mode=0o700)
    return folder


def _cli(home: Path, secrets: Path | None, *args: str, env: dict[str, str] | None = None):
    extra = ["--secrets-dir", str(secrets)] if secrets is not None else []
    return run_cli(home, *extra, *args, env={**NO_KEYRING, **(env or {})})


def _init(tmp_path: Path, secrets: Path) -> Path:
    home = tmp_path / "home"
    passphrase = tmp_path / "passphrase.txt"
    passphrase.write_text(PASSPHRASE + "\n")
    ok(_cli(home, secrets, "--json", "init", "--name", "Server", "--passphrase-file", str(passphrase)))
    ok(_cli(home, secrets, "--json", "dest", "add", "local", "local", "--path", str(tmp_path / "dest")))
    return home


def _add_folder(home: Path, secrets: Path | None, folder: Path, env: dict[str, str] | None = None) -> None:
    add = ["source", "add", "files", "folder", "--path", str(write_folder(folder))]
    ok(_cli(home, secrets, "--json", *add, env=env))


def test_a_plan_backs_up_and_restores_with_only_a_secrets_directory(
    tmp_path: Path, pg18: EmbeddedCluster
) -> None:
    secrets = _secrets_dir(tmp_path)
    home = _init(tmp_path, secrets)
    password_file = tmp_path / "pw"
    password_file.write_text(PG_PASSWORD)
    with temporary_database(pg18, "secretsdir_src") as database:
        database.execute("CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 25)")
        dsn = database.conninfo(password=None)
        ok(
            _cli(
                home,
                secrets,
                "--json",
                "source",
                "add",
                "db",
                "postgres",
                "--dsn",
                dsn,
                "--password-file",
                str(password_file),
            )
        )
        _add_folder(home, secrets, tmp_path / "files")
        backup = ok(_cli(home, secrets, "--json", "backup")).json()
        assert backup["ok"], backup
        ok(_cli(home, secrets, "--json", "verify", "latest", "--deep"))
        ok(
            _cli(
                home,
                secrets,
                "--json",
                "restore",
                "latest",
                "--source",
                "files",
                "--to-dir",
                str(tmp_path / "back"),
            )
        )
    assert (tmp_path / "back" / "invoices" / "2025" / "inv-0001.pdf").is_file()
    names = sorted(p.name for p in secrets.iterdir())
    assert "plan.identity.age" in names and "source.db.password" in names, names
    for path in secrets.iterdir():
        assert path.stat().st_mode & 0o077 == 0, path
    assert (secrets / "source.db.password").read_text() == PG_PASSWORD
    assert PG_PASSWORD not in (home / "config.toml").read_text()
    listed = ok(_cli(home, secrets, "--json", "secrets", "list")).json()
    assert {row["name"]: row["present"] for row in listed["secrets"]}["source.db.password"] is True
    assert "secrets directory" in listed["backend"]


def test_the_environment_variable_selects_the_directory_too(tmp_path: Path) -> None:
    secrets = _secrets_dir(tmp_path)
    home = _init(tmp_path, secrets)
    status = run_cli(home, "--json", "status", env={**NO_KEYRING, "DRGUI_SECRETS_DIR": str(secrets)})
    assert status.code in (0, 1), str(status)  # not 3: the directory answers, the keyring is not asked


@pytest.mark.parametrize(
    ("damage", "fix"),
    [
        (lambda d: d.chmod(0o755), "chmod 700"),
        (lambda d: (d / "plan.identity.age").chmod(0o644), "chmod 600"),
        (lambda d: os.chown(d / "plan.identity.age", 65534, 65534), "chown"),
        (lambda d: _replace_with_link(d / "plan.identity.age"), "not a regular file"),
    ],
    ids=["directory-open", "file-readable", "file-not-ours", "file-a-link"],
)
def test_an_unsafe_secrets_directory_is_refused_with_the_fix(tmp_path: Path, damage, fix: str) -> None:
    secrets = _secrets_dir(tmp_path)
    home = _init(tmp_path, secrets)
    _add_folder(home, secrets, tmp_path / "f")
    damage(secrets)
    result = _cli(home, secrets, "--json", "backup")
    assert result.code == 3, str(result)
    assert fix in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert not any((tmp_path / "dest").rglob("index.json")), "nothing may be written without the key"


def _replace_with_link(path: Path) -> None:
    target = path.with_name("elsewhere")
    path.rename(target)
    path.symlink_to(target)


def test_a_missing_secrets_directory_says_how_to_make_it(tmp_path: Path) -> None:
    secrets = _secrets_dir(tmp_path)
    home = _init(tmp_path, secrets)
    _add_folder(home, secrets, tmp_path / "f")
    result = _cli(home, tmp_path / "nope", "--json", "backup")
    assert result.code == 3, str(result)
    assert "mkdir -m 700" in result.json()["hint"]


def test_systemd_credentials_are_sealed_loaded_and_named_in_the_unit(tmp_path: Path) -> None:
    """`secrets seal` wraps systemd-creds; systemd's part (decrypting into $CREDENTIALS_DIRECTORY at unit
    start) is done here with `systemd-creds decrypt`, as there is no running systemd in the test machine."""
    need(shutil.which("systemd-creds") is not None, "systemd-creds (Debian package systemd)")
    need(os.geteuid() == 0, "root, to seal with systemd's host key (CI runs as root)")
    secrets = _secrets_dir(tmp_path)
    home = _init(tmp_path, secrets)
    identity_file = tmp_path / "identity"
    identity_file.write_text((secrets / "plan.identity.age").read_text())
    sealed = ok(
        _cli(
            home,
            None,
            "--json",
            "secrets",
            "seal",
            "plan.identity.age",
            "--value-file",
            str(identity_file),
            env={"DRGUI_SECRETS_DIR": str(secrets)},
        )
    ).json()
    sealed_path = Path(sealed["path"])
    assert sealed_path.is_file() and identity_file.read_bytes() not in sealed_path.read_bytes()
    unit = ok(_cli(home, secrets, "--json", "secrets", "unit", "--user", "postgres")).json()["units"]
    service = unit["drgui-run-due.service"]
    assert f"LoadCredentialEncrypted=plan.identity.age:{sealed_path}" in service
    assert "User=postgres" in service and "run-due" in service
    credentials = tmp_path / "credentials"
    credentials.mkdir(mode=0o700)
    subprocess.run(
        [
            "systemd-creds",
            "decrypt",
            "--name=plan.identity.age",
            str(sealed_path),
            str(credentials / "plan.identity.age"),
        ],
        check=True,
        capture_output=True,
    )
    (credentials / "plan.identity.age").chmod(0o400)
    shutil.rmtree(secrets)  # only systemd's directory is left
    _add_folder(home, None, tmp_path / "f", env={"CREDENTIALS_DIRECTORY": str(credentials)})
    backup = ok(_cli(home, None, "--json", "backup", env={"CREDENTIALS_DIRECTORY": str(credentials)})).json()
    assert backup["ok"]
    ok(
        _cli(
            home,
            None,
            "--json",
            "verify",
            "latest",
            "--deep",
            env={"CREDENTIALS_DIRECTORY": str(credentials)},
        )
    )


def test_sealing_an_unknown_name_lists_the_plan_s_names(tmp_path: Path) -> None:
    secrets = _secrets_dir(tmp_path)
    home = _init(tmp_path, secrets)
    result = _cli(home, secrets, "--json", "secrets", "seal", "nonsense", "--value-file", "/dev/null")
    assert result.code == 2 and "plan.identity.age" in result.stdout, str(result)
