"""Pure key material and scope rules: no I/O, so they are tested as tables.

A key is ``dbs_`` followed by 32 random bytes (43 URL-safe base64 characters). Only its SHA-256
is stored: the secret has 256 bits of entropy, so a slow password hash would add nothing but
latency to every request (decision 0015). The public id is a separate short random handle that
lists and revocations use; it reveals nothing about the secret.
"""

from __future__ import annotations

import hashlib
import secrets
from enum import StrEnum

KEY_PREFIX = "dbs_"
SECRET_BYTES = 32
PUBLIC_ID_BYTES = 6


class Scope(StrEnum):
    """What a key may do. Each scope includes the ones before it: admin ⊇ write ⊇ read."""

    read = "read"
    write = "write"
    admin = "admin"


_RANK = {Scope.read: 0, Scope.write: 1, Scope.admin: 2}


def allows(granted: Scope, required: Scope) -> bool:
    """Whether a key of scope ``granted`` may call a route that requires ``required``."""
    return _RANK[granted] >= _RANK[required]


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def new_public_id() -> str:
    return secrets.token_hex(PUBLIC_ID_BYTES)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def looks_like_key(value: str) -> bool:
    """Cheap shape check before any database lookup (a wrong shape is never a stored key)."""
    return value.startswith(KEY_PREFIX) and 40 <= len(value) <= 200 and value.isascii()
