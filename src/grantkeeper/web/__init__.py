"""The keeper's HTTP API (ASGI)."""

from grantkeeper.web.app import create_app

__all__ = ["create_app"]
