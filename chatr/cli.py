"""`chatr serve | demo | migrate | create-admin | export-schema`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from chatr.settings import InvalidSetting, Settings, load_settings, networks


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from chatr import migrations

    settings = load_settings()
    if problem := _serve_problem(settings, args):
        print(f"chatr: {problem}", file=sys.stderr)
        return 2
    trusted_proxies = (
        networks(args.trusted_proxies)
        if args.trusted_proxies is not None
        else settings.trusted_proxies
    )
    if settings.is_sqlite or args.migrate:
        # The embedded default must work on a fresh machine: bring its database up to date.
        migrations.upgrade(settings.database_url)
    uvicorn.run(
        "chatr.asgi:app",
        factory=False,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=settings.log_level,
        ws="auto",
        ws_max_size=settings.max_websocket_frame_bytes,
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=10,
        **proxy_options(trusted_proxies),
    )
    return 0


def _serve_problem(settings: Settings, args: argparse.Namespace) -> str | None:
    """Why serving with these settings would lose something, found before anything is done
    (no migration, no server start); None when it may go ahead."""
    from chatr.infra.outbox import undelivered_codes_problem

    if problem := undelivered_codes_problem(settings):
        return problem
    if args.workers > 1 and settings.broker_url.startswith("memory://"):
        # Each worker would have its own in-process broker: a subscriber on one worker would
        # never hear of a message sent through another.
        return "--workers > 1 needs a shared broker; set REDIS_URL (see README)."
    return None


def proxy_options(trusted_proxies: tuple[str, ...]) -> dict[str, Any]:
    """uvicorn's X-Forwarded-For handling: off unless proxies are configured, then only
    theirs (uvicorn walks the header from the right, skipping trusted hops).

    uvicorn's own default trusts 127.0.0.1, so a client on the same host (or behind a local
    proxy that passes the header through) could name a fresh address on every request and
    get a fresh rate-limit counter each time.
    """
    if not trusted_proxies:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": list(trusted_proxies)}


def _migrate(_: argparse.Namespace) -> int:
    from chatr import migrations

    migrations.upgrade(load_settings().database_url)
    return 0


def _create_admin(args: argparse.Namespace) -> int:
    """Create the first administrator (or promote an existing account).

    The password comes from CHATR_ADMIN_PASSWORD or an interactive prompt, never the
    command line (where it would land in shell history and the process list).
    """
    import asyncio
    import getpass

    from chatr import migrations
    from chatr.app import create_app
    from chatr.errors import ChatrError
    from chatr.services import admin

    settings = load_settings()
    password = os.environ.get("CHATR_ADMIN_PASSWORD")
    if not password:
        # Asked before anything else happens: without a terminal, getpass would read the
        # password from whatever stdin is (or die with a traceback at its end).
        if not sys.stdin.isatty():
            print(
                "chatr: no terminal to ask for the password; set CHATR_ADMIN_PASSWORD",
                file=sys.stderr,
            )
            return 2
        try:
            password = getpass.getpass("Password: ")
        except (EOFError, KeyboardInterrupt):
            print("\nchatr: no password given", file=sys.stderr)
            return 2
    if settings.is_sqlite:
        migrations.upgrade(settings.database_url)

    async def run() -> int:
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            try:
                user = await admin.create_admin(
                    app.state.runtime, username=args.username, password=password, email=args.email
                )
            except ChatrError as error:
                print(f"chatr: {error.message}", file=sys.stderr)
                return 1
        print(f"{user.username} (id {user.id}) is an administrator")
        return 0

    return asyncio.run(run())


def _export_schema(args: argparse.Namespace) -> int:
    from chatr.schema import export_sdl

    sdl = export_sdl()
    if args.output == "-":
        sys.stdout.write(sdl)
    else:
        Path(args.output).write_text(sdl)
    return 0


def _demo(args: argparse.Namespace) -> int:
    """Seed the demo people and conversations (idempotent), print how to sign in, serve."""
    import asyncio

    from chatr import demo, migrations

    settings = load_settings()
    if settings.is_production:
        print(
            "chatr: demo accounts have known passwords; not in production (CHATR_ENV)",
            file=sys.stderr,
        )
        return 2
    if problem := _serve_problem(settings, args):
        print(f"chatr: {problem}", file=sys.stderr)
        return 2
    migrations.upgrade(settings.database_url)
    try:
        seeded = asyncio.run(demo.seed(settings))
    except demo.DemoError as error:
        print(f"chatr: demo: {error}", file=sys.stderr)
        return 1
    url = None if args.seed_only else f"http://{args.host}:{args.port}/graphql"
    print(demo.summary(seeded, url), flush=True)
    if args.seed_only:
        return 0
    return _serve(args)


def _add_serve_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8000, help="port to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes; more than one needs REDIS_URL (default: %(default)s)",
    )
    parser.add_argument(
        "--migrate",
        action="store_true",
        help="apply database migrations first (default: only on SQLite, where it is always done)",
    )
    parser.add_argument(
        "--trusted-proxies",
        metavar="IPS",
        help="comma-separated IPs/CIDRs of proxies whose X-Forwarded-For is believed "
        "(default: CHATR_TRUSTED_PROXIES, else none)",
    )


def _only_upgrades(record: logging.LogRecord) -> bool:
    """alembic's migration log: the revisions it applies and anything going wrong, not the
    dialect notes it prints on every run."""
    return record.levelno >= logging.WARNING or record.getMessage().startswith("Running upgrade")


def configure_logging() -> None:
    """INFO to stderr, without alembic's start-up chatter: it names each of its plugins and
    the dialect on every command (about ten lines), although nothing is wrong."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.migration").addFilter(_only_upgrades)


def _unreachable_database(error: BaseException) -> bool:
    """A connection that could not be made (refused, timed out, name unknown, rejected),
    as raised by the drivers directly or wrapped by SQLAlchemy."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    if isinstance(error, OSError | TimeoutError | OperationalError | InterfaceError):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


def _run(args: argparse.Namespace) -> int:
    """Run the command; a configuration or database that cannot be used ends it with one
    line saying which (exit 2 or 1), never a traceback: these are the newcomer's first
    mistakes, not bugs."""
    try:
        return int(args.run(args))
    except InvalidSetting as error:
        print(f"chatr: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        if not _unreachable_database(error):
            raise
        reason = _reason(error)
        print(f"chatr: cannot reach the database ({_safe_url()}): {reason}", file=sys.stderr)
        return 1


def _reason(error: BaseException) -> str:
    """What went wrong, in words: "Connection refused" rather than a driver's repr."""
    cause = getattr(error, "orig", None) or error
    if isinstance(cause, OSError) and cause.errno:
        return os.strerror(cause.errno)
    return str(cause).strip() or type(cause).__name__


def _safe_url() -> str:
    """The configured database URL without its password, for an error message."""
    from sqlalchemy.engine import make_url

    return make_url(load_settings().database_url).render_as_string(hide_password=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chatr", description="chatr chat server")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve",
        help="run the server",
        description="Run the server (GraphQL at /graphql; GraphiQL there in development). "
        "Configured by environment variables (README, Configuration).",
    )
    _add_serve_options(serve)
    serve.set_defaults(run=_serve)

    demo = commands.add_parser(
        "demo",
        help="seed demo people and conversations, print how to sign in, then serve",
        description="Seed a handful of people with friends, a DM, a message request and a "
        "group with history (idempotent: safe to re-run), print their sign-in details, then "
        "serve like `chatr serve`. Development only; on the embedded default unless "
        "DATABASE_URL is set.",
    )
    _add_serve_options(demo)
    demo.add_argument(
        "--seed-only", action="store_true", help="seed and print, then exit instead of serving"
    )
    demo.set_defaults(run=_demo)

    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(run=_migrate)

    create_admin = commands.add_parser(
        "create-admin",
        help="create an administrator (or promote an account)",
        description="Create an administrator, or promote an existing account. The password "
        "comes from CHATR_ADMIN_PASSWORD or, on a terminal, a prompt; never the command line.",
    )
    create_admin.add_argument("username", help="the account's username")
    create_admin.add_argument("--email", help="email address of a new account (default: none)")
    create_admin.set_defaults(run=_create_admin)

    export = commands.add_parser("export-schema", help="write the GraphQL SDL")
    export.add_argument(
        "--output",
        "-o",
        default="schema.graphql",
        help="file, or - for stdout (default: %(default)s)",
    )
    export.set_defaults(run=_export_schema)

    args = parser.parse_args(argv)
    configure_logging()
    return _run(args)


if __name__ == "__main__":
    raise SystemExit(main())
