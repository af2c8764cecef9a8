"""`chatr serve | migrate | export-schema`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from chatr.settings import load_settings, networks


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from chatr import migrations
    from chatr.infra.outbox import undelivered_codes_problem

    settings = load_settings()
    if problem := undelivered_codes_problem(settings):
        print(f"chatr: {problem}", file=sys.stderr)
        return 2
    trusted_proxies = (
        networks(args.trusted_proxies)
        if args.trusted_proxies is not None
        else settings.trusted_proxies
    )
    if args.workers > 1 and settings.broker_url.startswith("memory://"):
        # Each worker would have its own in-process broker: a subscriber on one worker would
        # never hear of a message sent through another.
        print(
            "chatr: --workers > 1 needs a shared broker; set REDIS_URL (see README).",
            file=sys.stderr,
        )
        return 2
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
    import os

    from chatr import migrations
    from chatr.app import create_app
    from chatr.errors import ChatrError
    from chatr.services import admin

    settings = load_settings()
    if settings.is_sqlite:
        migrations.upgrade(settings.database_url)
    password = os.environ.get("CHATR_ADMIN_PASSWORD") or getpass.getpass("Password: ")

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chatr", description="chatr chat server")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument(
        "--migrate", action="store_true", help="apply migrations first (always on SQLite)"
    )
    serve.add_argument(
        "--trusted-proxies",
        metavar="IPS",
        help="comma-separated IPs/CIDRs of proxies whose X-Forwarded-For is believed "
        "(default: CHATR_TRUSTED_PROXIES, else none)",
    )
    serve.set_defaults(run=_serve)

    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(run=_migrate)

    create_admin = commands.add_parser(
        "create-admin", help="create an administrator (or promote an account)"
    )
    create_admin.add_argument("username")
    create_admin.add_argument("--email")
    create_admin.set_defaults(run=_create_admin)

    export = commands.add_parser("export-schema", help="write the GraphQL SDL")
    export.add_argument("--output", "-o", default="schema.graphql", help="file, or - for stdout")
    export.set_defaults(run=_export_schema)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return int(args.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
