"""Service keys: who may call the token API, and what each caller may do.

``GRANTKEEPER_SERVICE_API_KEYS`` is a comma list. Each entry is one of:

- ``<key>`` or ``sha256:<hex>``: as before, an unnamed key allowed to read tokens, force
  refreshes and disconnect (not to manage). It is listed as ``key-<first 8 hex of its hash>``.
- ``<name>:<key or sha256:hex>[;scopes=<scope> <scope>…][;ops=<op> <op>…]``: a named key,
  limited to those scopes and operations (lists separated by spaces or ``+``).

or the whole value is a JSON list of objects
``{"name": …, "key" | "sha256": …, "scopes": [...], "ops": [...]}``.

Operations: ``token`` (read tokens), ``refresh`` (force refresh), ``disconnect``, ``manage``
(the management API). A key limited to scopes must name its scopes when it asks for a token,
and may name only those. Only SHA-256 digests of the keys are kept, compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from grantkeeper.errors import ConfigurationError

OPERATIONS = ("token", "refresh", "disconnect", "manage")
#: What a key may do when its entry names no operations (what every key could do before).
DEFAULT_OPERATIONS = frozenset({"token", "refresh", "disconnect"})
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True, slots=True)
class ServiceKey:
    """One configured key: its name and limits; the secret is only a digest."""

    name: str
    digest: bytes = field(repr=False)
    operations: frozenset[str] = DEFAULT_OPERATIONS
    scopes: frozenset[str] | None = None
    """The scopes this key may ask for; None: any."""

    def allows(self, operation: str) -> bool:
        return operation in self.operations

    def scopes_beyond(self, requested: Iterable[str]) -> list[str]:
        """Requested scopes this key may not ask for."""
        if self.scopes is None:
            return []
        return sorted(set(requested) - self.scopes)

    def describe(self) -> dict[str, Any]:
        """For listings: never the key, only the first 8 hex digits of its digest."""
        return {
            "name": self.name,
            "fingerprint": "sha256:" + self.digest.hex()[:8],
            "operations": [op for op in OPERATIONS if op in self.operations],
            "scopes": sorted(self.scopes) if self.scopes is not None else None,
        }


def split_setting(value: str) -> list[str]:
    """The setting's entries: a JSON list (objects re-serialized one per entry) or a comma list."""
    text = value.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError:
            raise ValueError("the value starts with '[' but is not a JSON list") from None
        if not isinstance(items, list):
            raise ValueError("the value starts with '[' but is not a JSON list")
        return [json.dumps(item) if isinstance(item, dict) else str(item) for item in items]
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_keys(entries: Sequence[str]) -> list[ServiceKey]:
    """Every entry as a :class:`ServiceKey`.

    Raises:
        ConfigurationError: naming the entry by position and the fault, never its value.
    """
    keys = [_parse(entry, index) for index, entry in enumerate(entries, start=1)]
    names: set[str] = set()
    digests: set[bytes] = set()
    for index, key in enumerate(keys, start=1):
        if key.name in names:
            raise ConfigurationError(f"entry {index}: the name {key.name!r} is taken.")
        if key.digest in digests:
            raise ConfigurationError(f"entry {index}: the same key is listed twice.")
        names.add(key.name)
        digests.add(key.digest)
    return keys


def _parse(entry: str, index: int) -> ServiceKey:
    where = f"entry {index}"
    if entry.lstrip().startswith("{"):
        return _parse_json(entry, where)
    head, *options = entry.split(";")
    name, secret = None, head.strip()
    named = re.fullmatch(r"([^:]+):(.+)", secret)
    if named and named.group(1) != "sha256":
        name, secret = named.group(1), named.group(2)
    limits: dict[str, list[str]] = {}
    for option in options:
        label, sep, value = option.partition("=")
        label = label.strip()
        if not sep or label not in ("scopes", "ops"):
            raise ConfigurationError(f"{where}: options are scopes=… and ops=… after ';'.")
        limits[label] = [v for v in re.split(r"[\s+]+", value.strip()) if v]
    return _key(where, name, secret, limits.get("scopes"), limits.get("ops"))


def _parse_json(entry: str, where: str) -> ServiceKey:
    try:
        item = json.loads(entry)
    except ValueError:
        raise ConfigurationError(f"{where} is not a JSON object.") from None
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise ConfigurationError(f"{where}: a JSON entry needs a string 'name'.")
    if "sha256" in item:
        secret = f"sha256:{item['sha256']}"
    elif isinstance(item.get("key"), str):
        secret = item["key"]
    else:
        raise ConfigurationError(f"{where}: a JSON entry needs 'key' or 'sha256'.")
    lists: dict[str, list[str] | None] = {}
    for label in ("scopes", "ops"):
        value = item.get(label)
        if value is not None and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            raise ConfigurationError(f"{where}: '{label}' must be a list of strings.")
        lists[label] = value
    return _key(where, item["name"], secret, lists["scopes"], lists["ops"])


def _key(
    where: str,
    name: str | None,
    secret: str,
    scopes: list[str] | None,
    ops: list[str] | None,
) -> ServiceKey:
    digest = _digest(where, secret)
    if name is not None and not _NAME.fullmatch(name):
        raise ConfigurationError(
            f"{where}: a name is 1-64 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit."
        )
    operations = DEFAULT_OPERATIONS
    if ops is not None:
        unknown = sorted(set(ops) - set(OPERATIONS))
        if unknown or not ops:
            raise ConfigurationError(
                f"{where}: ops must be among {', '.join(OPERATIONS)} (got {', '.join(unknown)})."
            )
        operations = frozenset(ops)
    if scopes is not None and not scopes:
        raise ConfigurationError(f"{where}: scopes= names no scope.")
    return ServiceKey(
        name=name or "key-" + digest.hex()[:8],
        digest=digest,
        operations=operations,
        scopes=frozenset(scopes) if scopes is not None else None,
    )


def _digest(where: str, secret: str) -> bytes:
    if secret.startswith("sha256:"):
        try:
            digest = bytes.fromhex(secret.removeprefix("sha256:"))
        except ValueError:
            digest = b""
        if len(digest) != 32:
            raise ConfigurationError(f"{where} is not sha256:<64 hex digits>.")
        return digest
    if len(secret) < 16:
        raise ConfigurationError(f"{where}: the key is shorter than 16 characters.")
    return hashlib.sha256(secret.encode()).digest()


class ServiceKeyRing:
    """The configured keys; finds the one presented in constant time."""

    def __init__(self, entries: Sequence[str]) -> None:
        self.keys = tuple(parse_keys(entries))

    def __bool__(self) -> bool:
        return bool(self.keys)

    def identify(self, presented: str) -> ServiceKey | None:
        digest = hashlib.sha256(presented.encode()).digest()
        found: ServiceKey | None = None
        # Compare against every key so timing does not tell which one (or whether any) matched.
        for key in self.keys:
            if hmac.compare_digest(digest, key.digest):
                found = key
        return found

    def describe(self) -> list[dict[str, Any]]:
        return [key.describe() for key in self.keys]
