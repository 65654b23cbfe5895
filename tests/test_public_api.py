import subprocess
import sys

import pytest

import grantkeeper
from grantkeeper import errors

PUBLIC_CLASSES = {
    "AccessToken",
    "DisconnectOutcome",
    "GrantEvent",
    "Keeper",
    "KeeperCredentials",
    "Listener",
    "Settings",
    "SignInCandidate",
    "SignInResult",
    "SyncKeeper",
}


def test_all_is_sorted_and_complete() -> None:
    assert list(grantkeeper.__all__) == sorted(grantkeeper.__all__)
    for name in grantkeeper.__all__:
        assert hasattr(grantkeeper, name)
    error_classes = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.GrantkeeperError)
    }
    assert set(grantkeeper.__all__) == error_classes | PUBLIC_CLASSES | {"__version__"}


def test_every_error_has_a_stable_code_status_and_advice() -> None:
    seen: set[str] = set()
    names = [n for n in grantkeeper.__all__ if n != "__version__" and n not in PUBLIC_CLASSES]
    for cls in (getattr(grantkeeper, n) for n in names):
        assert issubclass(cls, grantkeeper.GrantkeeperError)
        assert cls.code not in seen, cls
        seen.add(cls.code)
        assert 400 <= cls.status < 600
        assert cls.advice.endswith(".")


@pytest.mark.slow
def test_importing_grantkeeper_stays_light() -> None:
    code = "import sys, grantkeeper; print('sqlalchemy' in sys.modules, 'httpx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    code = "from grantkeeper import Keeper, SyncKeeper; print(Keeper.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "grantkeeper.keeper.core"


def test_the_keeper_hides_its_store_provider_and_webhook_sender() -> None:
    # Faces reach grants through the keeper's methods, never around them.
    keeper = grantkeeper.Keeper(grantkeeper.Settings())
    public = {name for name in dir(keeper) if not name.startswith("_")}
    assert not public & {"store", "provider", "webhooks", "events", "parts"}
    assert keeper.webhooks_configured is False
