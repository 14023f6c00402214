"""Secrets at rest (instance passwords): Fernet tokens under the keys of ``DBSIZE_SECRET_KEY``.

``DBSIZE_SECRET_KEY`` is a comma-separated list of Fernet keys. The first key encrypts; every key
decrypts (``MultiFernet``), so a key is rotated by putting a new one first, re-encrypting the
stored secrets (``rotate``), then removing the old key. Plaintext never leaves this module except
to the collector that opens the connection.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

if TYPE_CHECKING:
    from dbsize.config import Settings

SECRET_KEY_FILE = "secret_key"


class SecretKeyMissing(Exception):
    """No DBSIZE_SECRET_KEY: the service refuses to store (or read) a secret."""


class SecretUnreadable(Exception):
    """A stored secret that none of the configured keys decrypts (the key was removed)."""


def parse_keys(value: str) -> list[str]:
    """The keys of a DBSIZE_SECRET_KEY value; raises ValueError naming the bad one (by position,
    never by value)."""
    keys = [part.strip() for part in value.split(",") if part.strip()]
    if not keys:
        raise ValueError("is empty; give one or more Fernet keys separated by commas")
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError as exc:
            raise ValueError(
                f"key {position} is not a Fernet key (32 url-safe base64-encoded bytes; "
                "make one with `python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'`)"
            ) from exc
    return keys


class SecretBox:
    """Encrypts with the first key, decrypts with any. ``SecretBox(None)`` holds no key: every
    operation raises SecretKeyMissing."""

    def __init__(self, keys: str | None) -> None:
        self._fernet = (
            MultiFernet([Fernet(key) for key in parse_keys(keys)]) if keys is not None else None
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        key = settings.secret_key
        return cls(key.get_secret_value() if key is not None else None)

    @property
    def configured(self) -> bool:
        return self._fernet is not None

    def _require(self) -> MultiFernet:
        if self._fernet is None:
            raise SecretKeyMissing(
                "DBSIZE_SECRET_KEY is not set, so dbsize cannot store or read a password; "
                "set it to a Fernet key (`dbsize up` makes one for a local setup)"
            )
        return self._fernet

    def encrypt(self, plaintext: str) -> str:
        return self._require().encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._require().decrypt(token.encode("ascii")).decode()
        except InvalidToken as exc:
            raise SecretUnreadable(
                "the stored password cannot be decrypted with any key of DBSIZE_SECRET_KEY "
                "(was the key that encrypted it removed?); set the password again"
            ) from exc

    def rotate(self, token: str) -> str:
        """The same secret, encrypted under the first key."""
        try:
            return self._require().rotate(token.encode("ascii")).decode("ascii")
        except InvalidToken as exc:
            raise SecretUnreadable("a stored password cannot be decrypted") from exc


def ensure_local_key(folder: str | Path) -> tuple[str, bool]:
    """The key kept in ``folder/secret_key`` (the git-ignored local folder of ``dbsize up``),
    generated on first use. Returns (key, created)."""
    path = Path(folder) / SECRET_KEY_FILE
    if path.exists():
        return path.read_text().strip(), False
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key().decode("ascii")
    path.touch(mode=0o600)
    path.write_text(key + "\n")
    return key, True
