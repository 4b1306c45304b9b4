"""Sign-up, log-in, and the role checks every other blueprint uses."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache, wraps
from typing import Any, TypeVar

import jwt as pyjwt
from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from flask_jwt_extended import create_access_token
from flask_limiter.util import get_remote_address
from sqlalchemy import bindparam, literal, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from app.errors import BadCredentials, Conflict, Forbidden, Unauthorized
from app.extensions import clients, db, limiter
from app.models import Member
from app.tokens import TokenVerifier
from app.validation import Credentials, parse
from strategies import tables

bp = Blueprint("auth", __name__, url_prefix="/auth")
View = TypeVar("View", bound=Callable[..., Any])
ROLES = ("member", "seller")


def create_member(username: str, password: str, role: str = "member") -> Member:
    """Store a new member with a scrypt password hash; Conflict if the name is taken."""
    member = Member(username=username, password_hash=generate_password_hash(password), role=role)
    db.session.add(member)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict("username_taken", "That username is taken.") from None
    return member


def access_token_for(member_id: int, role: str) -> str:
    """An access token: identity is the member id as a string, the role a claim."""
    return create_access_token(identity=str(member_id), additional_claims={"role": role})


@bp.post("/signup")
def signup() -> tuple[Response, int]:
    """Create a member account."""
    body = parse(Credentials)
    member = create_member(body.username, body.password)
    return jsonify(id=member.id, username=member.username, role=member.role), 201


def _failed(response: Response) -> bool:
    return response.status_code == BadCredentials.status


def _username_key() -> str:
    """The login's username, case-folded (the database compares names without case)."""
    try:
        username = json.loads(request.get_data(cache=True)).get("username")
    except (ValueError, AttributeError):
        username = None
    return f"user:{username.strip().casefold()}" if isinstance(username, str) else "user:"


@cache
def _dummy_hash() -> str:
    """A hash to check when the username is unknown, so that both failures cost one scrypt."""
    return generate_password_hash("no-such-member")


# Only failures count (deduct_when), so members who type their password right are never slowed;
# once a username or an address is over its limit, even a right password answers 429 until the window ends.
@bp.post("/login")
@limiter.limit(lambda: current_app.config["LOGIN_FAILURES_PER_USERNAME"], key_func=_username_key, deduct_when=_failed)
@limiter.limit(
    lambda: current_app.config["LOGIN_FAILURES_PER_ADDRESS"], key_func=get_remote_address, deduct_when=_failed
)
def login() -> Response:
    """Exchange a username and password for an access token."""
    body = parse(Credentials)
    member = db.session.scalar(select(Member).where(Member.username == body.username))
    password_hash = member.password_hash if member is not None else _dummy_hash()
    if not check_password_hash(password_hash, body.password) or member is None:
        raise BadCredentials()
    return jsonify(access_token=access_token_for(member.id, member.role))


def role_required(*roles: str, lookup: bool = True) -> Callable[[View], View]:
    """Require a valid access token whose role claim is one of ``roles``, of an account that exists.

    ``lookup=False`` skips the account's lookup (the download hot path): a signed token is then
    trusted until it expires, even if its account was deleted meanwhile.
    """

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            claims = _verified_claims()
            if claims.get("role") not in roles:  # the claim first: no database trip for a wrong role
                raise Forbidden()
            if lookup and not _account_exists(current_member_id()):
                raise Unauthorized("The token's account no longer exists.")
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorate


# One indexed probe, no ORM object: the existence check runs on every signed-in request but the download.
_EXISTS = select(literal(1)).where(tables.member.c.id == bindparam("member_id"))


def _account_exists(member_id: int) -> bool:
    """Whether the token's account still exists: one statement on the reads engine (app.extensions)."""
    for attempt in (1, 2):
        try:
            with clients().reads.connect() as conn:
                return conn.execute(_EXISTS, {"member_id": member_id}).first() is not None
        except DBAPIError as exc:
            if attempt == 2 or not exc.connection_invalidated:
                raise
    raise AssertionError("unreachable")


def _verified_claims() -> dict[str, Any]:
    """The request's bearer token, verified once (app.tokens); its claims are kept for the request."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme != "Bearer" or not token.strip():
        raise Unauthorized("Send the access token as 'Authorization: Bearer <token>'.")
    verifier: TokenVerifier = current_app.extensions["token_verifier"]
    try:
        claims = verifier.verify(token.strip())
    except pyjwt.ExpiredSignatureError:
        raise Unauthorized("The token has expired.") from None
    except pyjwt.InvalidTokenError as exc:
        # A token that does not decode gets PyJWT's words on base64 and codecs: say it plainly instead.
        if isinstance(exc, pyjwt.DecodeError) and not isinstance(exc, pyjwt.InvalidSignatureError):
            raise Unauthorized("The token is malformed: it is not an access token of this service.") from None
        raise Unauthorized(f"The token is not valid: {exc}") from None
    g.token_claims = claims
    return claims


def current_member_id() -> int:
    """The signed-in member's id, from the token's subject."""
    try:
        return int(g.token_claims["sub"])
    except (AttributeError, KeyError, TypeError, ValueError):
        raise Unauthorized() from None


def init_token_verifier(app: Flask) -> None:
    """This app's verifier of access tokens: the secret and algorithm flask-jwt-extended signs them with."""
    if app.config.get("JWT_ALGORITHM", "HS256") != "HS256":
        raise ValueError("only HS256 access tokens are supported")
    app.extensions["token_verifier"] = TokenVerifier(
        app.config["JWT_SECRET_KEY"], leeway_s=app.config.get("JWT_DECODE_LEEWAY", 0)
    )
