"""age identities, the passphrase-wrapped identity, and streaming encrypt/decrypt.

Everything drgui writes is in the age format (https://age-encryption.org/v1), through pyrage, so the
stock `age` binary can decrypt any part: `age -d -i key.txt part.age`.
"""

from __future__ import annotations

import base64
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO

import pyrage
from pyrage import x25519

from drgui.core.errors import OperationFailed, UsageError
from drgui.core.plan.secrets import remember

MAX_SCRYPT_WORK_FACTOR = 22
ARMOR_BEGIN = "-----BEGIN AGE ENCRYPTED FILE-----"
ARMOR_END = "-----END AGE ENCRYPTED FILE-----"
MIN_PASSPHRASE_CHARS = 16
MIN_PASSPHRASE_WORDS = 5
_COMMON = {"password", "passphrase", "correct horse battery staple", "letmein", "qwerty", "123456"}


@dataclass(frozen=True)
class KeyPair:
    identity: str  # AGE-SECRET-KEY-1...: secret
    recipient: str  # age1...: public

    def key_file_text(self) -> str:
        """The identity in age's own key-file format, usable as `age -d -i key.txt`."""
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"# created: {created}\n# public key: {self.recipient}\n{self.identity}\n"


def generate_keypair() -> KeyPair:
    identity = x25519.Identity.generate()
    pair = KeyPair(str(identity), str(identity.to_public()))
    remember(pair.identity)
    return pair


def identity_from_text(text: str) -> KeyPair:
    """Parse an identity or an age key file (comments allowed)."""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("AGE-SECRET-KEY-"):
            try:
                identity = x25519.Identity.from_str(line)
            except pyrage.IdentityError:
                break
            remember(line)
            return KeyPair(line, str(identity.to_public()))
    raise OperationFailed(
        "The text holds no valid age identity.", hint="Check that the key file was not truncated."
    )


def passphrase_problem(passphrase: str) -> str | None:
    """Why a recovery passphrase is too weak, or None when it is strong enough."""
    stripped = passphrase.strip()
    words = [w for w in re.split(r"[\s\-_.,]+", stripped) if w]
    if stripped.lower() in _COMMON:
        return "it is one of the most common passphrases."
    if len(words) >= MIN_PASSPHRASE_WORDS and len(stripped) >= 20:
        return None
    if len(stripped) < MIN_PASSPHRASE_CHARS:
        return (
            f"it has {len(stripped)} characters; use at least {MIN_PASSPHRASE_CHARS}, or {MIN_PASSPHRASE_WORDS} or more "
            "random words. It protects every backup and cannot be reset."
        )
    if len(set(stripped)) < 8:
        return "it repeats too few different characters; use random words or a password manager's generator."
    return None


def wrap_identity(pair: KeyPair, passphrase: str, *, armored: bool = False) -> bytes:
    """The key file encrypted with the recovery passphrase (age scrypt): identity.age."""
    wrapped: bytes = pyrage.passphrase.encrypt(pair.key_file_text().encode(), passphrase, armored=armored)
    return wrapped


def dearmor(data: bytes) -> bytes:
    text = data.decode("ascii", errors="replace").strip()
    if not text.startswith(ARMOR_BEGIN):
        return data
    body = text[len(ARMOR_BEGIN) :]
    end = body.find(ARMOR_END)
    if end < 0:
        raise UsageError("The armored age block has no END line.", hint="Copy the whole block, BEGIN to END.")
    return base64.b64decode("".join(body[:end].split()), validate=False)


def armor(data: bytes) -> str:
    encoded = base64.b64encode(data).decode()
    lines = [encoded[i : i + 64] for i in range(0, len(encoded), 64)]
    return "\n".join([ARMOR_BEGIN, *lines, ARMOR_END]) + "\n"


def scrypt_work_factor(data: bytes) -> int | None:
    """The log2(N) of the scrypt stanza of an age header, or None when the file is not passphrase-encrypted."""
    raw = dearmor(data)
    header_end = raw.find(b"\n---")
    header = raw[: header_end if header_end > 0 else 4096].decode("ascii", errors="replace")
    if not header.startswith("age-encryption.org/v1"):
        raise OperationFailed(
            "This is not an age-encrypted file.", hint="Check that you picked identity.age."
        )
    for line in header.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] == "->" and parts[1] == "scrypt":
            try:
                return int(parts[3])
            except ValueError:
                raise OperationFailed("The scrypt stanza of identity.age is malformed.") from None
    return None


def unwrap_identity(data: bytes, passphrase: str) -> KeyPair:
    """Open identity.age with the passphrase; refuse scrypt work factors above 22 before any work."""
    factor = scrypt_work_factor(data)
    if factor is None:
        raise OperationFailed(
            "identity.age is not protected by a passphrase.", hint="Use the identity.age drgui wrote."
        )
    if factor > MAX_SCRYPT_WORK_FACTOR:
        raise OperationFailed(
            f"identity.age asks for scrypt work factor {factor} (the limit is {MAX_SCRYPT_WORK_FACTOR}).",
            hint="This file was not written by drgui and could stall this machine; do not use it.",
        )
    try:
        text = pyrage.passphrase.decrypt(dearmor(data), passphrase).decode("utf-8")
    except pyrage.DecryptError:
        raise UsageError(
            "Wrong passphrase for identity.age.",
            hint="Type the recovery passphrase you chose at `drgui init`.",
        ) from None
    return identity_from_text(text)


def encrypt_stream(reader: BinaryIO, writer: BinaryIO, recipient: str) -> None:
    """Stream `reader` into `writer` as age ciphertext (64 KiB chunks; memory stays flat)."""
    try:
        pyrage.encrypt_io(reader, writer, [x25519.Recipient.from_str(recipient)])
    except pyrage.EncryptError as error:
        raise OperationFailed(f"Encryption failed: {error}.") from None


def decrypt_stream(reader: BinaryIO, writer: BinaryIO | io.RawIOBase, identity: str) -> None:
    """Stream-decrypt; a wrong key or any corrupted byte raises OperationFailed."""
    try:
        pyrage.decrypt_io(reader, writer, [x25519.Identity.from_str(identity)])
    except pyrage.DecryptError:
        raise OperationFailed(
            "Decryption failed: the data is corrupted or was encrypted for another key."
        ) from None
    except OSError as error:
        # pyrage reports a damaged chunk in the body (after a good header) as OSError("decryption error").
        raise OperationFailed(f"Decryption failed: the data is corrupted ({error}).") from None


def encrypt_bytes(data: bytes, recipient: str) -> bytes:
    cipher: bytes = pyrage.encrypt(data, [x25519.Recipient.from_str(recipient)])
    return cipher


def decrypt_bytes(data: bytes, identity: str) -> bytes:
    try:
        plain: bytes = pyrage.decrypt(data, [x25519.Identity.from_str(identity)])
        return plain
    except pyrage.DecryptError:
        raise OperationFailed(
            "Decryption failed: the data is corrupted or was encrypted for another key."
        ) from None
