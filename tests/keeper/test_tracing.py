"""OpenTelemetry spans for sign-in, refresh, provider calls and store transactions, recorded with
the SDK's in-memory exporter; no span carries a token or a code."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from grantkeeper.keeper import Keeper

from ..app_world import store_of
from .conftest import DRIVE_APPDATA, OPENID, World

_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    # The global provider can be set once per process; grantkeeper's tracer (a proxy from
    # the API package) follows it from then on.
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def values(span: ReadableSpan) -> str:
    return json.dumps(
        {"name": span.name, "attributes": dict(span.attributes or {}), "status": str(span.status)},
        default=str,
    )


@pytest.mark.anyio
async def test_sign_in_refresh_provider_and_store_spans(
    keeper: Keeper, world: World, spans: InMemorySpanExporter
) -> None:
    code = world.code([*OPENID, DRIVE_APPDATA])
    result = await keeper.sign_in(code, platform="ios")
    first = await keeper.access_token(result.sub)
    world.emulator.control.advance_clock(2 * 3600)
    second = await keeper.access_token(result.sub)
    assert second.refreshed
    grant = await store_of(keeper).get_grant(result.sub)
    assert grant is not None
    finished = spans.get_finished_spans()
    names = [s.name for s in finished]
    assert "grantkeeper.sign_in" in names
    assert "grantkeeper.refresh" in names
    assert "grantkeeper.provider.token:authorization_code" in names
    assert "grantkeeper.provider.token:refresh_token" in names
    assert "grantkeeper.store.transaction" in names
    by_name = {s.name: s for s in finished}
    sign_in = by_name["grantkeeper.sign_in"]
    assert sign_in.attributes is not None
    assert sign_in.attributes["grantkeeper.platform"] == "ios"
    exchange = by_name["grantkeeper.provider.token:authorization_code"]
    assert exchange.parent is not None
    assert exchange.parent.span_id == sign_in.context.span_id
    refresh = by_name["grantkeeper.refresh"]
    assert refresh.attributes is not None
    assert refresh.attributes["grantkeeper.sub"] == result.sub
    store = by_name["grantkeeper.store.transaction"]
    assert store.attributes is not None
    assert store.attributes["grantkeeper.db_system"] in ("sqlite", "postgresql")
    everything = " ".join(values(s) for s in finished)
    secrets = [code, first.token, second.token, grant.refresh_token or "refresh?"]
    for secret in secrets:
        assert secret not in everything


@pytest.mark.anyio
async def test_a_failed_call_is_marked_with_its_code(
    keeper: Keeper, world: World, spans: InMemorySpanExporter
) -> None:
    from grantkeeper.errors import InvalidCode

    with pytest.raises(InvalidCode):
        await keeper.sign_in("4/not-a-code-at-all")
    failed = [s for s in spans.get_finished_spans() if s.name == "grantkeeper.sign_in"]
    assert failed
    assert failed[0].attributes is not None
    assert failed[0].attributes["grantkeeper.error"] == "invalid_code"
    assert "not-a-code" not in values(failed[0])


@pytest.mark.slow  # a fresh interpreter: logging configured from scratch
def test_json_log_lines() -> None:
    script = """
import logging, logging.config
from grantkeeper.logsafety import uvicorn_log_config
logging.config.dictConfig(uvicorn_log_config("json"))
logging.getLogger("grantkeeper.keeper").info("sign-in sub=%s", "42")
logging.getLogger("uvicorn.access").info(
    '%s - "%s %s HTTP/%s" %d', "127.0.0.1", "GET", "/?code=4/secret-code&state=x", "1.1", 200
)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [(line["level"], line["logger"]) for line in lines] == [
        ("INFO", "grantkeeper.keeper"),
        ("INFO", "uvicorn.access"),
    ]
    assert lines[0]["message"] == "sign-in sub=42"
    assert "time" in lines[0]
    assert "secret-code" not in done.stderr
