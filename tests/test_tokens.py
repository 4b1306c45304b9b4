"""The access-token verifier: one decode, and a cache that never answers for a token it did not verify."""

from __future__ import annotations

import time

import jwt
import pytest

from app.tokens import TokenVerifier

SECRET = "a-secret-of-the-verifier-tests-0123456789"


def token(**claims: object) -> str:
    now = int(time.time())
    return jwt.encode({"sub": "7", "type": "access", "iat": now, "nbf": now, "exp": now + 60, **claims}, SECRET)


def test_a_cached_token_is_checked_for_expiry_on_every_use(monkeypatch: pytest.MonkeyPatch) -> None:
    verifier = TokenVerifier(SECRET)
    tok = token()
    assert verifier.verify(tok)["sub"] == "7"
    assert verifier.verify(tok)["sub"] == "7"  # from the cache
    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(jwt.ExpiredSignatureError):
        verifier.verify(tok)


def test_only_the_exact_verified_token_is_served_from_the_cache() -> None:
    verifier = TokenVerifier(SECRET)
    tok = token()
    verifier.verify(tok)
    head, payload, signature = tok.split(".")
    forged = ".".join([head, jwt.utils.base64url_encode(b'{"sub":"1","exp":9999999999}').decode(), signature])
    with pytest.raises(jwt.InvalidSignatureError):
        verifier.verify(forged)
    with pytest.raises(jwt.InvalidSignatureError):
        verifier.verify(tok[:-2] + ("AA" if not tok.endswith("AA") else "BB"))


@pytest.mark.parametrize(
    "bad",
    [
        {"exp": None},  # no expiry: refused, never cached
        {"sub": None},
        {"type": "refresh"},
    ],
)
def test_the_rules_of_today(bad: dict[str, object]) -> None:
    claims = {k: v for k, v in bad.items() if v is not None}
    now = int(time.time())
    base = {"sub": "7", "type": "access", "iat": now, "nbf": now, "exp": now + 60}
    payload = {k: v for k, v in {**base, **claims}.items() if not (k in bad and bad[k] is None)}
    with pytest.raises(jwt.InvalidTokenError):
        TokenVerifier(SECRET).verify(jwt.encode(payload, SECRET))


def test_other_algorithms_are_refused() -> None:
    now = int(time.time())
    unsigned = jwt.encode({"sub": "7", "exp": now + 60}, None, algorithm="none")
    hs512 = jwt.encode({"sub": "7", "exp": now + 60}, SECRET, algorithm="HS512")
    for tok in (unsigned, hs512):
        with pytest.raises(jwt.InvalidTokenError):
            TokenVerifier(SECRET).verify(tok)


def test_the_cache_is_bounded() -> None:
    verifier = TokenVerifier(SECRET, max_cached=3)
    for i in range(10):
        verifier.verify(token(sub=str(i + 1)))
        assert len(verifier._cache) <= 3


def test_the_key_is_prepared_once_and_pyjwts_checks_stay(monkeypatch: pytest.MonkeyPatch) -> None:
    prepared = []
    real = jwt.algorithms.HMACAlgorithm.prepare_key

    def counting(self: jwt.algorithms.HMACAlgorithm, key: str | bytes) -> bytes:
        prepared.append(key)
        return real(self, key)

    tokens = [token(sub=str(i + 1)) for i in range(5)]
    monkeypatch.setattr(jwt.algorithms.HMACAlgorithm, "prepare_key", counting)
    verifier = TokenVerifier(SECRET)
    for tok in tokens:
        verifier.verify(tok)
    assert prepared == [SECRET]  # at start, not per decode
    monkeypatch.undo()
    with pytest.raises(jwt.ExpiredSignatureError):
        verifier.verify(token(exp=int(time.time()) - 10))
    with pytest.raises(jwt.ImmatureSignatureError):
        verifier.verify(token(iat=int(time.time()) + 600))
    with pytest.raises(jwt.InvalidSignatureError):
        verifier.verify(
            jwt.encode({"sub": "7", "iat": 1, "exp": int(time.time()) + 60}, "another-secret-0123456789abcdef")
        )
    # A secret that is a PEM key is still refused, as PyJWT refuses it.
    with pytest.raises(jwt.InvalidKeyError):
        TokenVerifier("-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----")
