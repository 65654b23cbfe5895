"""Request bodies checked against their models, with errors that name fields, never values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from grantkeeper.errors import InvalidRequest

M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], fields: Mapping[str, Any]) -> M:
    """``fields`` as ``model``; empty form values count as absent.

    Raises:
        InvalidRequest: a sentence per bad field. Pydantic's own messages can echo the input (a
            code, a token), so they are rewritten from the error type and context only.
    """
    present = {name: value for name, value in fields.items() if value not in ("", None)}
    try:
        return model.model_validate(present)
    except ValidationError as error:
        problems = sorted({_sentence(detail) for detail in error.errors()})
        raise InvalidRequest(" ".join(problems)) from None


def _sentence(detail: ErrorDetails) -> str:
    name = ".".join(str(part) for part in detail["loc"]) or "body"
    kind = detail["type"]
    ctx = detail.get("ctx") or {}
    if kind == "missing":
        return f"The field '{name}' is required."
    if kind == "extra_forbidden":
        return f"The field '{name}' is not part of this request."
    if kind == "literal_error":
        return f"The field '{name}' must be one of {ctx.get('expected', '?')}."
    if kind == "string_too_long":
        return f"The field '{name}' is at most {ctx.get('max_length')} characters."
    if kind == "string_too_short":
        return f"The field '{name}' must not be empty."
    if kind == "string_type":
        return f"The field '{name}' must be a string."
    return f"The field '{name}' is invalid."
