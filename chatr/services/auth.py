"""Sessions and tokens: login, rotating refresh with reuse detection, logout, viewer lookup."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Select, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from chatr import security
from chatr.db import rows_changed
from chatr.errors import NotFound, TwoFactorRequired, Unauthenticated
from chatr.infra import rate_limits
from chatr.models import AuthSession, RefreshToken, User, UserKind
from chatr.models.base import utcnow
from chatr.pubsub import channels, envelopes
from chatr.pubsub.broker import Resync
from chatr.runtime import Runtime
from chatr.services import two_factor, two_factor_codes, users


@dataclass(frozen=True)
class Viewer:
    """Who is asking: an authenticated user id and the session their token belongs to.

    Deliberately ids only: the profile is loaded (through a loader) only when a field needs
    it, and a long-lived WebSocket never holds a stale copy.
    """

    id: int
    session_id: int
    token_expires_at: datetime
    #: A support-widget guest (chatr.services.guests.GUEST_ALLOWED says what it may do).
    guest: bool = False


@dataclass(frozen=True)
class IssuedTokens:
    user: User
    access_token: str
    access_token_expires_at: datetime
    refresh_token: str


async def _issue(rt: Runtime, session: AuthSession, user: User, refresh: str) -> IssuedTokens:
    access, expires_at = security.issue_access_token(
        secret=rt.settings.jwt_secret,
        user_id=user.id,
        session_id=session.id,
        ttl_seconds=rt.settings.access_token_ttl_seconds,
        guest=user.kind == UserKind.GUEST,
    )
    return IssuedTokens(user, access, expires_at, refresh)


async def start_session(
    rt: Runtime, *, user: User, device_label: str | None, ttl_seconds: int | None = None
) -> IssuedTokens:
    """A new signed-in device; `ttl_seconds` caps it (guests: 24 h), else the setting."""
    refresh = security.new_opaque_token()
    now = utcnow()
    async with rt.db.session() as db, db.begin():
        auth_session = AuthSession(
            user_id=user.id,
            device_label=(device_label or "")[:200] or None,
            created_at=now,
            last_used_at=now,
            expires_at=now
            + timedelta(seconds=ttl_seconds or rt.settings.refresh_token_ttl_seconds),
        )
        db.add(auth_session)
        await db.flush()
        db.add(RefreshToken(session_id=auth_session.id, token_hash=security.hash_token(refresh)))
    return await _issue(rt, auth_session, user, refresh)


async def login(
    rt: Runtime,
    *,
    login: str,
    password: str,
    client_ip: str,
    device_label: str | None = None,
) -> IssuedTokens:
    await rt.limits.hit(rate_limits.LOGIN, client_ip)
    async with rt.db.reader() as db:
        user = await users.find_by_login(db, login=login)
    account = _account_key(user, login)
    # Locked accounts refuse even the right password: that is what stops a guesser who has
    # many addresses. Unknown logins lock alike, so a lock reveals no account.
    await rt.limits.check(rate_limits.LOGIN_ACCOUNT, account)
    # Verify even for unknown accounts so the answer time does not reveal which exist.
    password_ok = await security.verify_password(user.password_hash if user else None, password)
    if user is None or not password_ok:
        if await rt.limits.count_failure(rate_limits.LOGIN_ACCOUNT, account) and user:
            _mail_lock_notice(rt, user)
        raise Unauthenticated("Wrong username, email or password.")
    await rt.limits.clear(rate_limits.LOGIN_ACCOUNT, account)
    if user.suspended_at is not None:
        raise Unauthenticated("This account is suspended.")
    method = two_factor.METHOD if user.totp_secret is not None else None
    if two_factor_codes.uses_codes(user):
        method = user.two_factor_method
        await two_factor_codes.send_login_code(rt, user=user)
    if method is not None:
        raise TwoFactorRequired(
            challenge=security.issue_two_factor_challenge(
                secret=rt.settings.jwt_secret, user_id=user.id
            ),
            method=method,
        )
    return await start_session(rt, user=user, device_label=device_label)


def account_lock_key(user_id: int) -> str:
    """The per-account login limit's key of a user (a password reset lifts the lock)."""
    return f"user:{user_id}"


def _account_key(user: User | None, login: str) -> str:
    """What the per-account login limit counts against: the account however it is named
    (username or email), else the login as typed."""
    return account_lock_key(user.id) if user is not None else f"login:{login.strip().lower()}"


def _mail_lock_notice(rt: Runtime, user: User) -> None:
    """Tell the owner their account was just locked: they may be the one locked out, and
    they should know someone is guessing. Queued: the outbox sends it off the request path."""
    if not user.email:
        return
    rt.outbox.queue(
        to=user.email,
        subject="Sign-in to your chatr account is locked for now",
        body=f"Someone entered a wrong password for your chatr account {user.username} too "
        "many times, so signing in to it is locked for the next 15 minutes. If it was you, "
        "wait and try again, or reset your password (that lifts the lock). If it was not "
        "you, your password was not guessed; choosing a stronger one is still a good idea.",
    )


async def complete_two_factor_login(
    rt: Runtime, *, challenge: str, code: str, device_label: str | None = None
) -> IssuedTokens:
    """The second step of a login that answered TWO_FACTOR_REQUIRED: an authenticator code,
    or the code sent by SMS or email, whichever the user's second factor is."""
    user_id = security.decode_two_factor_challenge(challenge, secret=rt.settings.jwt_secret)
    async with rt.db.reader() as db:
        user = await users.get(db, user_id=user_id)
    if user is None or user.suspended_at is not None:
        raise Unauthenticated("The sign-in challenge is no longer valid; log in again.")
    if user.totp_secret is not None:
        await two_factor.verify_code(rt, user=user, secret=user.totp_secret, code=code)
    elif two_factor_codes.uses_codes(user):
        await two_factor_codes.verify_login_code(rt, user=user, code=code)
    else:
        raise Unauthenticated("The sign-in challenge is no longer valid; log in again.")
    return await start_session(rt, user=user, device_label=device_label)


async def refresh(rt: Runtime, *, refresh_token: str) -> IssuedTokens:
    """Rotate: the presented token is spent and its successor issued in the same session.

    A spent token presented again means someone else holds a copy: the whole session (every
    token descended from the same login) is revoked, and both holders must log in again.
    Except within `refresh_reuse_grace_seconds` of the rotation while the successor is still
    unused: that is two tabs (or a retried request) refreshing at once, and they get the same
    successor (`security.successor_token`), as OAuth providers do.
    """
    token_hash = security.hash_token(refresh_token)
    successor = security.successor_token(refresh_token, secret=rt.settings.jwt_secret)
    successor_hash = security.hash_token(successor)
    now = utcnow()
    reused_session_id: int | None = None
    async with rt.db.session() as db, db.begin():
        row = await db.execute(
            select(RefreshToken, AuthSession, User)
            .join(AuthSession, AuthSession.id == RefreshToken.session_id)
            .join(User, User.id == AuthSession.user_id)
            .where(RefreshToken.token_hash == token_hash)
            .with_for_update(of=RefreshToken)
        )
        found = row.first()
        if found is None:
            raise Unauthenticated("The refresh token is not valid.")
        token, auth_session, user = found
        if auth_session.revoked_at is not None or auth_session.expires_at <= now:
            raise Unauthenticated("This session has ended; log in again.")
        if user.suspended_at is not None:
            raise Unauthenticated("This account is suspended.")
        # Claimed by a conditional UPDATE: of two racing requests exactly one spends it, on
        # SQLite (no row locks) as on PostgreSQL.
        claimed = await rows_changed(
            db,
            update(RefreshToken)
            .where(RefreshToken.id == token.id, RefreshToken.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False),
        )
        if claimed == 1:
            auth_session.last_used_at = now
            db.add(RefreshToken(session_id=auth_session.id, token_hash=successor_hash))
        elif not await _replayed_in_grace(rt, db, token_id=token.id, successor_hash=successor_hash):
            auth_session.revoked_at = now
            auth_session.revoked_reason = "refresh_token_reuse"
            reused_session_id = auth_session.id
    if reused_session_id is not None:
        await _announce_revoked(rt, user_id=user.id, session_id=reused_session_id)
        raise Unauthenticated("This refresh token was already used; the session is revoked.")
    return await _issue(rt, auth_session, user, successor)


async def _replayed_in_grace(
    rt: Runtime, db: AsyncSession, *, token_id: int, successor_hash: str
) -> bool:
    """Whether a spent token was rotated within the grace window and its successor is still
    unused: the same client (or its other tab) asking again, not a stolen copy."""
    used_at = await db.scalar(select(RefreshToken.used_at).where(RefreshToken.id == token_id))
    grace = timedelta(seconds=rt.settings.refresh_reuse_grace_seconds)
    if used_at is None or utcnow() - used_at > grace:
        return False
    successor = await db.execute(
        select(RefreshToken.id).where(
            RefreshToken.token_hash == successor_hash, RefreshToken.used_at.is_(None)
        )
    )
    return successor.first() is not None


async def _announce_revoked(rt: Runtime, *, user_id: int, session_id: int | None) -> None:
    """Forget the session here at once, then tell its sockets and every other instance."""
    rt.sessions.forget(user_id=user_id, session_id=session_id)
    revoked = envelopes.SessionRevoked(user_id=user_id, session_id=session_id)
    await rt.announce(channels.user(user_id), revoked)
    await rt.announce(channels.sessions(), revoked)


async def watch_revocations(rt: Runtime) -> None:
    """Keep this instance's session cache in step with revocations anywhere (runs forever)."""
    async with rt.broker.subscribe(channels.sessions()) as sub:
        rt.sessions.clear()  # anything revoked before we listened must be re-checked
        async for item in sub:
            if isinstance(item, Resync):
                rt.sessions.clear()
                continue
            envelope = envelopes.decode(item.data)
            if isinstance(envelope, envelopes.SessionRevoked):
                rt.sessions.forget(user_id=envelope.user_id, session_id=envelope.session_id)


async def revoke_session(rt: Runtime, *, user_id: int, session_id: int, reason: str) -> bool:
    async with rt.db.session() as db, db.begin():
        revoked = (
            await rows_changed(
                db,
                update(AuthSession)
                .where(
                    AuthSession.id == session_id,
                    AuthSession.user_id == user_id,
                    AuthSession.revoked_at.is_(None),
                )
                .values(revoked_at=utcnow(), revoked_reason=reason),
            )
            > 0
        )
    if revoked:
        await _announce_revoked(rt, user_id=user_id, session_id=session_id)
    return revoked


def _live_sessions_of(viewer: Viewer) -> Select[AuthSession]:
    return select(AuthSession).where(
        AuthSession.user_id == viewer.id,
        AuthSession.revoked_at.is_(None),
        AuthSession.expires_at > utcnow(),
    )


async def list_sessions(rt: Runtime, *, viewer: Viewer) -> list[AuthSession]:
    """The viewer's signed-in devices that are still live, most recently used first."""
    async with rt.db.reader() as db:
        result = await db.scalars(
            _live_sessions_of(viewer).order_by(
                AuthSession.last_used_at.desc(), AuthSession.id.desc()
            )
        )
        return list(result)


async def own_session(rt: Runtime, *, viewer: Viewer, session_id: int) -> AuthSession:
    """One of the viewer's live sessions (one `mySessions` lists). Someone else's, and one
    ended, are NOT_FOUND alike."""
    async with rt.db.reader() as db:
        found = await db.scalar(_live_sessions_of(viewer).where(AuthSession.id == session_id))
    if found is None:
        raise NotFound("No such session.", field="id")
    return found


async def revoke_all_sessions(rt: Runtime, *, user_id: int, reason: str) -> int:
    """End every session of a user (password reset, suspension); their sockets close."""
    async with rt.db.session() as db, db.begin():
        revoked = await rows_changed(
            db,
            update(AuthSession)
            .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=utcnow(), revoked_reason=reason),
        )
    await _announce_revoked(rt, user_id=user_id, session_id=None)
    return revoked


async def revoke_own_session(rt: Runtime, *, viewer: Viewer, session_id: int) -> bool:
    """Sign one of the viewer's devices out. Someone else's session is NOT_FOUND, as is one
    already ended, so session ids reveal nothing."""
    if not await revoke_session(rt, user_id=viewer.id, session_id=session_id, reason="revoked"):
        raise NotFound("No such session.", field="id")
    return True


async def revoke_other_sessions(rt: Runtime, *, viewer: Viewer) -> int:
    """Sign out every device but this one; returns how many were signed out."""
    async with rt.db.session() as db, db.begin():
        revoked = list(
            await db.scalars(
                update(AuthSession)
                .where(
                    AuthSession.user_id == viewer.id,
                    AuthSession.id != viewer.session_id,
                    AuthSession.revoked_at.is_(None),
                )
                .values(revoked_at=utcnow(), revoked_reason="signed_out_elsewhere")
                .returning(AuthSession.id)
            )
        )
    for session_id in revoked:
        await _announce_revoked(rt, user_id=viewer.id, session_id=session_id)
    return len(revoked)


async def logout(rt: Runtime, *, viewer: Viewer) -> bool:
    return await revoke_session(
        rt, user_id=viewer.id, session_id=viewer.session_id, reason="logout"
    )


_SESSION_STATE = (
    select(AuthSession.__table__.c.revoked_at, User.__table__.c.suspended_at)
    .select_from(AuthSession.__table__.join(User.__table__))
    .where(
        AuthSession.__table__.c.id == bindparam("session_id"),
        AuthSession.__table__.c.user_id == bindparam("user_id"),
    )
)


async def ensure_session_active(rt: Runtime, *, user_id: int, session_id: int) -> None:
    """UNAUTHENTICATED unless the session is live and its account not suspended.

    Runs on every HTTP request, so it is one prebuilt two-column Core query in autocommit.
    """
    async with rt.db.autocommit_engine.connect() as connection:
        found = (
            await connection.execute(_SESSION_STATE, {"session_id": session_id, "user_id": user_id})
        ).first()
    if found is None or found.revoked_at is not None or found.suspended_at is not None:
        raise Unauthenticated("This session has been revoked or has ended; log in again.")


async def viewer_from_token(rt: Runtime, *, token: str) -> Viewer:
    """Authenticate an access token: signature, expiry, and a live session and account."""
    claims = rt.sessions.claims(token)
    if claims is None:
        claims = security.decode_access_token(token, secret=rt.settings.jwt_secret)
        rt.sessions.remember_claims(token, claims)
    elif claims.expires_at <= datetime.now(UTC):
        raise Unauthenticated("The access token has expired; refresh it.")
    if not rt.sessions.is_live(session_id=claims.session_id, user_id=claims.user_id):
        await ensure_session_active(rt, user_id=claims.user_id, session_id=claims.session_id)
        rt.sessions.remember_live(session_id=claims.session_id, user_id=claims.user_id)
    return Viewer(
        id=claims.user_id,
        session_id=claims.session_id,
        token_expires_at=claims.expires_at,
        guest=claims.guest,
    )
