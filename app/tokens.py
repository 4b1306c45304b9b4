"""Access-token verification for every signed-in request: one PyJWT decode, and a bounded cache of verified tokens.

flask-jwt-extended loads each token's segments four times per request; this module verifies it once,
with the same rules: HS256 only, the signature, ``exp`` and ``sub`` required, ``nbf``/``iat`` as
PyJWT checks them, access tokens only (the role claim is the caller's to check).

Why the cache is safe: it is keyed by the whole token, signature included, so an entry answers
only for the exact bytes that verified; a signed token cannot change; its expiry is checked again
on every use; it is bounded (emptied when full), per process. It skips only the repeated HMAC and
base64 work of a token already verified in this process (a member retrying during a rush).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import jwt

ALGORITHMS = ["HS256"]
REQUIRED_CLAIMS = ["exp", "sub"]


class TokenVerifier:
    """Verifies access tokens signed with one secret; a process's verifier is shared by its threads."""

    def __init__(self, secret: str, leeway_s: float = 0, max_cached: int = 50_000) -> None:
        self._secret = secret
        self._leeway_s = leeway_s
        self._max_cached = max_cached
        self._cache: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims; raises jwt.InvalidTokenError (ExpiredSignatureError when expired)."""
        claims = self._cache.get(token)
        if claims is not None:
            if claims["exp"] + self._leeway_s <= time.time():
                self._cache.pop(token, None)
                raise jwt.ExpiredSignatureError("Signature has expired")
            return claims
        claims = jwt.decode(
            token, self._secret, algorithms=ALGORITHMS, leeway=self._leeway_s, options={"require": REQUIRED_CLAIMS}
        )
        if claims.get("type", "access") != "access":
            raise jwt.InvalidTokenError("Only access tokens are allowed")
        with self._lock:
            if len(self._cache) >= self._max_cached:
                self._cache.clear()
            self._cache[token] = claims
        return claims
