"""Google's accounts and OAuth 2.0 / OpenID Connect provider: test users and OAuth clients,
the consent page, codes, the token endpoint, ID tokens and signing keys, revocation, tokeninfo
and userinfo, and the identity part of the control API.

Only a docstring here: :mod:`grantkeeper.emulator.state` holds these records, so importing the
routes from this package's ``__init__`` would make a cycle.
"""
