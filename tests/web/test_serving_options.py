"""What ``serve`` hands uvicorn, in one process and with several workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from grantkeeper.settings import Settings
from grantkeeper.web import serving


@pytest.mark.parametrize("workers", [1, 2])
def test_idle_connections_outlast_a_load_balancers_by_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, workers: int
) -> None:
    # uvicorn's own 5 s would close a connection a balancer (or a client's pool) still
    # considers open, and the request sent on it gets no answer.
    given: dict[str, Any] = {}
    monkeypatch.setattr(serving.uvicorn, "run", lambda *args, **kwargs: given.update(kwargs))
    monkeypatch.setattr(serving, "Keeper", lambda settings: object())
    monkeypatch.setattr("grantkeeper.web.app.create_app", lambda keeper, **kwargs: object())
    settings = Settings(_env_file=None, data_dir=tmp_path)
    serving.serve(settings, {}, "127.0.0.1", 0, workers)
    assert given["timeout_keep_alive"] == 75
    assert given["proxy_headers"] is False
    assert given["access_log"] is True

    longer = settings.model_copy(update={"keep_alive_seconds": 620})
    serving.serve(longer, {}, "127.0.0.1", 0, workers)
    assert given["timeout_keep_alive"] == 620

    quiet = settings.model_copy(update={"access_log": False})
    serving.serve(quiet, {}, "127.0.0.1", 0, workers)
    assert given["access_log"] is False
