import grantkeeper


def test_all_is_sorted_and_complete() -> None:
    assert list(grantkeeper.__all__) == sorted(grantkeeper.__all__)
    for name in grantkeeper.__all__:
        assert hasattr(grantkeeper, name)


def test_every_error_has_a_stable_code_status_and_advice() -> None:
    seen: set[str] = set()
    errors = [getattr(grantkeeper, n) for n in grantkeeper.__all__ if n != "__version__"]
    for cls in errors:
        assert issubclass(cls, grantkeeper.GrantkeeperError)
        assert cls.code not in seen, cls
        seen.add(cls.code)
        assert 400 <= cls.status < 600
        assert cls.advice.endswith(".")
