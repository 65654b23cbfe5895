"""docs/errors.md is the table errors.py renders: every code, status, meaning and advice."""

from __future__ import annotations

from pathlib import Path

from grantkeeper import errors
from grantkeeper.errors_doc import render

DOC = Path(__file__).resolve().parents[1] / "docs" / "errors.md"


def test_docs_errors_md_is_generated_from_errors_py() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/errors.md is out of date: run `make docs` (python -m grantkeeper.errors_doc)"
    )


def test_every_error_class_has_its_own_code_and_a_row() -> None:
    text = DOC.read_text(encoding="utf-8")
    seen: dict[str, str] = {}
    for name in dir(errors):
        cls = getattr(errors, name)
        if isinstance(cls, type) and issubclass(cls, errors.GrantkeeperError):
            assert seen.setdefault(cls.code, name) == name, f"{name} reuses code {cls.code}"
            assert f"| `{cls.code}` | {cls.status} | `{name}` |" in text
            assert cls.advice.strip()
