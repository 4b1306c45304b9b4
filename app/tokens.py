"""Access-token verification for every signed-in request: one PyJWT decode, and a bounded cache of verified tokens.

flask-jwt-extended loads each token's segments four times per request; this module verifies it once,
with the same rules: HS256 only, the signature, ``exp``, ``iat`` and ``sub`` required, ``nbf``/``iat``
as PyJWT checks them, access tokens only (the role claim is the caller's to check). On top of PyJWT:
``sub`` is a member id in ASCII digits without a leading zero, ``exp`` and ``iat`` are JSON numbers
(PyJWT accepts ``"exp": "<digits>"``, which the cache's expiry check and the revocation check could
not compare).

The HMAC key is prepared once per verifier: PyJWT re-derives it from the secret on every decode
(with PEM, DER and JWK sniffing), even from a ``PyJWK``. The verifier's decoder has its own HS256
whose ``prepare_key`` answers the verifier's secret with the bytes prepared (and checked) at start;
any other key goes through PyJWT's own checks.

Why the cache is safe: it is keyed by the whole token, signature included, so an entry answers
only for the exact bytes that verified; a signed token cannot change; its expiry is checked again
on every use; it is bounded (emptied when full), per process. It skips only the repeated HMAC and
base64 work of a token already verified in this process (a member retrying during a rush).
Revocation is not the cache's business: the caller checks every use against the revocation view.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import jwt
from jwt.algorithms import HMACAlgorithm

from app import ids

ALGORITHMS = ["HS256"]
REQUIRED_CLAIMS = ["exp", "iat", "sub"]


class _PreparedHMAC(HMACAlgorithm):
    """HS256 whose key for one secret is prepared once; any other key is prepared as PyJWT does."""

    def __init__(self, secret: str) -> None:
        super().__init__(HMACAlgorithm.SHA256)
        self._secret = secret
        self._prepared = super().prepare_key(secret)

    def prepare_key(self, key: str | bytes) -> bytes:
        """The prepared secret when ``key`` is it; else PyJWT's own preparation."""
        if key == self._secret:
            return self._prepared
        return super().prepare_key(key)


def _decoder(secret: str) -> jwt.PyJWT:
    """A PyJWT of this verifier's own, HS256 on the prepared key (PyJWT's module-level decoder is untouched)."""
    decoder = jwt.PyJWT()
    # PyJWS's public registry, reached through the PyJWT that owns it.
    decoder._jws.unregister_algorithm("HS256")
    decoder._jws.register_algorithm("HS256", _PreparedHMAC(secret))
    return decoder


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class TokenVerifier:
    """Verifies access tokens signed with one secret; a process's verifier is shared by its threads."""

    def __init__(self, secret: str, leeway_s: float = 0, max_cached: int = 50_000) -> None:
        self._secret = secret
        self._decoder = _decoder(secret)
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
        claims = self._decoder.decode(
            token, self._secret, algorithms=ALGORITHMS, leeway=self._leeway_s, options={"require": REQUIRED_CLAIMS}
        )
        if claims.get("type", "access") != "access":
            raise jwt.InvalidTokenError("Only access tokens are allowed")
        if not (_is_number(claims["exp"]) and _is_number(claims["iat"])):
            raise jwt.InvalidTokenError("exp and iat must be numbers")
        if not isinstance(claims["sub"], str) or ids.parse(claims["sub"]) is None:
            raise jwt.InvalidTokenError("sub must be a member id in ASCII digits")
        with self._lock:
            if len(self._cache) >= self._max_cached:
                self._cache.clear()
            self._cache[token] = claims
        return claims
