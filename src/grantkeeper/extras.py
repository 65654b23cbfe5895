"""The optional parts of grantkeeper and the extra that installs each.

The library core (the keeper, the store on SQLite, the OAuth and RISC protocol code, the CLI's
non-serving commands) needs none of them; a command that does says which extra to install
instead of failing with an ImportError deep inside.
"""

from __future__ import annotations

import importlib

from grantkeeper.errors import ConfigurationError

#: extra -> the modules it brings (import names).
EXTRAS: dict[str, tuple[str, ...]] = {
    "server": ("fastapi", "uvicorn", "multipart"),
    "postgres": ("psycopg",),
    "emulator": ("fastapi", "uvicorn", "PIL", "jinja2", "trustme"),
    "demo": ("fastapi", "uvicorn", "PIL", "jinja2", "trustme", "googleapiclient", "requests"),
}


def require_extra(extra: str, what: str) -> None:
    """Raise :class:`ConfigurationError` naming ``pip install 'grantkeeper[extra]'`` when a
    module of ``extra`` cannot be imported; ``what`` is the feature that needs it."""
    missing = []
    for module in EXTRAS[extra]:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ConfigurationError(
            f"{what} needs the optional '{extra}' part of grantkeeper "
            f"({', '.join(missing)} not installed): pip install 'grantkeeper[{extra}]'."
        )
