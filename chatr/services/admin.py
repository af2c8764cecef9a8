"""Administration: the admin role, listing accounts, suspending and deleting them."""

from __future__ import annotations

from sqlalchemy import delete, false, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from chatr import security
from chatr.errors import BadUserInput, Forbidden, NotFound
from chatr.models import Attachment, User, UserRole
from chatr.models.base import utcnow
from chatr.runtime import Runtime
from chatr.services import auth, picture_files, uploads, users, validation
from chatr.services.pagination import Page, PageRequest, paginate


async def require_admin(session: AsyncSession, *, viewer_id: int) -> None:
    role = await session.scalar(select(User.role).where(User.id == viewer_id))
    if role != UserRole.ADMIN:
        raise Forbidden("Only administrators can do that.")


async def list_users(
    rt: Runtime, *, viewer_id: int, page: PageRequest, search: str | None = None
) -> Page[User]:
    """Every account (suspended ones included), newest first; `search` matches names/email."""
    async with rt.db.reader() as session:
        await require_admin(session, viewer_id=viewer_id)
        statement = select(User)
        if search and not validation.storable(search):
            statement = statement.where(false())  # no username or address can contain it
        elif search:
            pattern = f"%{search.strip().lower()}%"
            statement = statement.where(
                or_(User.username_key.like(pattern), User.email_key.like(pattern))
            )
        return await paginate(
            session,
            statement,
            keys=(User.created_at, User.id),
            descending=True,
            request=page,
            key_values=lambda u: (u.created_at, u.id),
        )


async def account(rt: Runtime, *, viewer_id: int, user_id: int) -> User:
    """One account as administrators see it (suspended ones included); FORBIDDEN for anyone
    else, NOT_FOUND when there is none."""
    async with rt.db.reader() as session:
        await require_admin(session, viewer_id=viewer_id)
        target = await session.get(User, user_id)
    if target is None:
        raise NotFound("No such user.", field="id")
    return target


async def _target(session: AsyncSession, *, viewer_id: int, user_id: int) -> User:
    await require_admin(session, viewer_id=viewer_id)
    if user_id == viewer_id:
        raise BadUserInput("Administrators cannot do that to themselves.", field="userId")
    target = await session.get(User, user_id)
    if target is None:
        raise NotFound("No such user.", field="userId")
    if target.role == UserRole.ADMIN:
        raise Forbidden("Administrators cannot act on other administrators.", field="userId")
    return target


async def suspend(rt: Runtime, *, viewer_id: int, user_id: int) -> User:
    """Suspend: logins are refused and every session ends, closing the user's sockets."""
    async with rt.db.session() as session, session.begin():
        target = await _target(session, viewer_id=viewer_id, user_id=user_id)
        target.suspended_at = target.suspended_at or utcnow()
    await auth.revoke_all_sessions(rt, user_id=user_id, reason="suspended")
    return target


async def unsuspend(rt: Runtime, *, viewer_id: int, user_id: int) -> User:
    async with rt.db.session() as session, session.begin():
        target = await _target(session, viewer_id=viewer_id, user_id=user_id)
        target.suspended_at = None
    return target


async def delete_user(rt: Runtime, *, viewer_id: int, user_id: int) -> bool:
    """Delete an account and what hangs off it (memberships, sessions, friendships…);
    their messages stay in conversations, shown without a sender (with their attachments).
    Their avatar, cover and unsent uploads are files of nothing any more: deleted too."""
    async with rt.db.session() as session, session.begin():
        target = await _target(session, viewer_id=viewer_id, user_id=user_id)
        pictures_of = [url for url in (target.avatar_url, target.cover_url) if url]
    await auth.revoke_all_sessions(rt, user_id=user_id, reason="deleted")
    async with rt.db.session() as session, session.begin():
        unsent = Attachment.owner_id == user_id, Attachment.message_id.is_(None)
        pending = list(await session.scalars(select(Attachment.storage_key).where(*unsent)))
        await session.execute(delete(Attachment).where(*unsent))
        await session.execute(delete(User).where(User.id == user_id))
    for url in pictures_of:
        await picture_files.discard(rt, url)
    await uploads.delete_objects(rt, pending)
    return True


async def create_admin(
    rt: Runtime, *, username: str, password: str, email: str | None = None
) -> User:
    """The first administrator (CLI): creates the account, or promotes an existing one."""
    async with rt.db.reader() as session:
        existing = await users.find_by_login(session, login=username)
    if existing is not None:
        password_hash = await security.hash_password(validation.password(password))
        async with rt.db.session() as session, session.begin():
            await session.execute(
                update(User)
                .where(User.id == existing.id)
                .values(role=UserRole.ADMIN, password_hash=password_hash)
            )
        existing.role = UserRole.ADMIN
        return existing
    user = await users.create(
        rt, username=username, password=password, email=email, client_ip="cli", staff=True
    )
    async with rt.db.session() as session, session.begin():
        await session.execute(update(User).where(User.id == user.id).values(role=UserRole.ADMIN))
    user.role = UserRole.ADMIN
    return user
