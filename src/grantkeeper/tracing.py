"""OpenTelemetry spans through the API package only: without an SDK configured by the app they
are no-ops (a few microseconds); with one, sign-ins, refreshes, provider calls and store
transactions show up in the app's traces.

Attributes are names, codes, counts and user ids, never a token, a code or a secret; exception
messages are not recorded (only the error's stable code or type name).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from grantkeeper._version import __version__
from grantkeeper.errors import GrantkeeperError

tracer = trace.get_tracer("grantkeeper", __version__)

Attribute = str | int | float | bool | None


@contextmanager
def span(name: str, **attributes: Attribute) -> Iterator[Span]:
    """A span named ``name``; an exception marks it failed with its code, not its message."""
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        # No SDK installed (yet): the span would record nothing, and making it and setting it
        # current cost ~2% of a token read. An app that installs one gets spans from then on.
        yield trace.INVALID_SPAN
        return
    with tracer.start_as_current_span(
        name,
        attributes={f"grantkeeper.{k}": v for k, v in attributes.items() if v is not None},
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except GrantkeeperError as error:
            current.set_attribute("grantkeeper.error", error.code)
            current.set_status(Status(StatusCode.ERROR, error.code))
            raise
        except BaseException as error:
            current.set_attribute("grantkeeper.error", type(error).__name__)
            current.set_status(Status(StatusCode.ERROR, type(error).__name__))
            raise
