"""What a test client or a test user is made of, as the control API takes it and as a seed file
(``grantkeeper emulator --seed``) lists it: one definition for both."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from grantkeeper.emulator.oauth.models import ClientType


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClientIn(_Input):
    type: ClientType = "web"
    client_id: str | None = None
    client_secret: str | None = None
    redirect_uris: list[str] | None = None
    javascript_origins: list[str] | None = None
    project_id: str = "grantkeeper-emulator"


class UserIn(_Input):
    email: str
    sub: str | None = Field(None, pattern=r"^\d{1,255}$")
    name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    picture: str | None = None
    locale: str = "en"
    hd: str | None = None
    email_verified: bool = True
