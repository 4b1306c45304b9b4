"""Sign-up, log-in, and the role checks every other blueprint uses."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, wraps
from typing import Any, TypeVar, cast

import jwt as pyjwt
from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from flask_jwt_extended import create_access_token
from flask_limiter.util import get_remote_address
from sqlalchemy import func, insert, literal, select
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from app import revocations
from app.errors import BadCredentials, Conflict, Forbidden, InvalidRequest, Unauthorized
from app.extensions import db, limiter
from app.models import Member
from app.revocation_view import current_view
from app.tokens import TokenVerifier
from app.validation import USERNAME, Credentials, NewAccount, parse

bp = Blueprint("auth", __name__, url_prefix="/auth")
View = TypeVar("View", bound=Callable[..., Any])
ROLES = ("member", "seller")


def create_member(username: str, password: str, role: str = "member") -> Member:
    """Store a new member with a scrypt password hash; 400 for a name outside the rule, Conflict if taken.

    "Taken" is as the database compares names: MariaDB's collation equates case, accents and more
    (its unique key refuses the second); SQLite compares bytes, so there the insert itself skips a
    name that differs from a stored one only in case (one statement: no second writer between).
    """
    if not USERNAME.fullmatch(username):
        raise InvalidRequest("username: 3 to 32 ASCII letters, digits, '.', '_' or '-'")
    values = {"username": username, "password_hash": generate_password_hash(password), "role": role}
    if db.engine.dialect.name == "sqlite":
        same = select(literal(1)).where(func.lower(Member.username) == func.lower(username)).exists()
        statement = insert(Member).from_select(list(values), select(*map(literal, values.values())).where(~same))
    else:
        statement = insert(Member).values(values)
    try:
        created = cast(CursorResult[Any], db.session.execute(statement)).rowcount
        db.session.commit()
    except IntegrityError:
        created = 0
    if not created:
        db.session.rollback()
        raise Conflict("username_taken", "That username is taken.")
    member = db.session.scalar(select(Member).where(Member.username == username))
    assert member is not None
    return member


def access_token_for(member_id: int, role: str) -> str:
    """An access token: identity is the member id as a string, the role a claim."""
    return create_access_token(identity=str(member_id), additional_claims={"role": role})


@bp.post("/signup")
def signup() -> tuple[Response, int]:
    """Create a member account."""
    body = parse(NewAccount)
    member = create_member(body.username, body.password)
    return jsonify(id=member.id, username=member.username, role=member.role), 201


def _failed(response: Response) -> bool:
    return response.status_code == BadCredentials.status


def _username_key() -> str:
    """Failures count against the account the name matched, an unknown name against its case-folded form.

    MariaDB's collation finds one account under many spellings (case, accents, full-width forms,
    ignorable characters): a count per string would give each spelling a budget of its own.
    Only a valid body is looked up; for any other the view answers 400, which counts nothing.
    """
    try:
        body, member = _attempt()
    except InvalidRequest:
        return "invalid"
    return f"member:{member.id}" if member is not None else f"user:{body.username.casefold()}"


def _attempt() -> tuple[Credentials, Member | None]:
    """This login's credentials and the account they name, looked up once per request (400 for a bad body)."""
    if "login_attempt" not in g:
        body = parse(Credentials)
        g.login_attempt = (body, find_account(body.username))
    found: tuple[Credentials, Member | None] = g.login_attempt
    return found


def find_account(username: str) -> Member | None:
    """The account named ``username``, the same name up to case; None if no account has that name.

    The database's own match is wider (MariaDB's collation: accents, full-width forms, ignorable
    characters; SQLite: exact bytes, hence ``lower`` there). Of its matches, only the account whose
    name equals this one but for case counts: ``alicé`` or ``ali\u200bce`` is nobody, not alice.
    """
    if db.engine.dialect.name == "sqlite":
        where = func.lower(Member.username) == func.lower(username)
    else:
        where = Member.username == username
    found = db.session.scalars(select(Member).where(where).limit(10))
    same = [m for m in found if m.username.lower() == username.lower()]
    exact = [m for m in same if m.username == username]
    if exact or len(same) == 1:
        return (exact or same)[0]
    return None  # no account, or several on SQLite that differ only in case and none typed exactly


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
    body, member = _attempt()
    password_hash = member.password_hash if member is not None else _dummy_hash()
    if not check_password_hash(password_hash, body.password) or member is None:
        raise BadCredentials()
    revocations.admit(member.id)
    return jsonify(access_token=access_token_for(member.id, member.role))


def role_required(*roles: str) -> Callable[[View], View]:
    """Require a valid access token, not revoked, whose role claim is one of ``roles``.

    Revocation (a ban, a deleted account, a role or password change) is this process's in-memory
    view (app/revocation_view.py): no database or Redis round trip per request.
    """

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            claims = _verified_claims()
            current_view().check(int(claims["sub"]), claims["iat"])
            if claims.get("role") not in roles:
                raise Forbidden()
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorate


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
