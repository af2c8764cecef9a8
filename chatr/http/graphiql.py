"""GraphiQL, served entirely by chatr: no CDN at run time.

The third-party assets (GraphiQL, React, the explorer plugin, graphql-ws) are installed by
npm from `graphiql/package-lock.json` into `graphiql/node_modules` (git-ignored) by
scripts/bootstrap, and served from there under /graphiql/assets/. chatr's own glue
(`static/graphiql.js`: the fetcher, which runs subscriptions over graphql-ws with the Headers
tab as `connectionParams`) ships with chatr. Without the assets the page says how to install
them rather than falling back to a CDN.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response

from chatr.errors import ErrorCode
from chatr.http.media import Media, respond
from chatr.settings import Settings

#: The repository's install location (an editable install, as scripts/bootstrap makes).
DEFAULT_ASSETS = Path(__file__).resolve().parents[2] / "graphiql" / "node_modules"
_OWN = Path(__file__).resolve().parent / "static"

#: Served name → path under node_modules. Nothing else there is reachable.
ASSETS = {
    "react.js": "react/umd/react.production.min.js",
    "react-dom.js": "react-dom/umd/react-dom.production.min.js",
    "graphiql.js": "graphiql/graphiql.min.js",
    "graphiql.css": "graphiql/graphiql.min.css",
    "explorer.js": "@graphiql/plugin-explorer/dist/index.umd.js",
    "explorer.css": "@graphiql/plugin-explorer/dist/style.css",
    "graphql-ws.js": "graphql-ws/umd/graphql-ws.min.js",
}
_MEDIA = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>chatr · GraphiQL</title>
<link rel="stylesheet" href="/graphiql/assets/graphiql.css">
<link rel="stylesheet" href="/graphiql/assets/explorer.css">
<style>
body { margin: 0; height: 100vh; overflow: hidden; }
#graphiql { height: 100vh; display: flex; }
</style>
</head>
<body>
<div id="graphiql">Loading GraphiQL…</div>
<script src="/graphiql/assets/react.js"></script>
<script src="/graphiql/assets/react-dom.js"></script>
<script src="/graphiql/assets/graphiql.js"></script>
<script src="/graphiql/assets/explorer.js"></script>
<script src="/graphiql/assets/graphql-ws.js"></script>
<script src="/graphiql/assets/chatr-graphiql.js"></script>
</body>
</html>
"""

MISSING_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>chatr · GraphiQL not installed</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>GraphiQL's assets are not installed</h1>
<p>chatr serves GraphiQL itself and never loads it from a CDN. Its files are fetched by npm
when chatr is installed: run <code>source scripts/bootstrap</code> (needs Node.js and npm),
or <code>npm ci --prefix graphiql</code> in the repository, then reload this page.</p>
<p>Looked in: <code>{where}</code> (set <code>CHATR_GRAPHIQL_ASSETS</code> to another
<code>node_modules</code>).</p>
<p>The API itself works meanwhile: POST to <code>/graphql</code>.</p>
</body>
</html>
"""


class GraphiQL:
    def __init__(self, assets_dir: Path) -> None:
        self.assets_dir = assets_dir

    @classmethod
    def from_settings(cls, settings: Settings) -> GraphiQL:
        return cls(settings.graphiql_assets_dir or DEFAULT_ASSETS)

    @property
    def installed(self) -> bool:
        return all((self.assets_dir / path).is_file() for path in ASSETS.values())

    def page(self) -> Response:
        if not self.installed:
            html = MISSING_PAGE.replace("{where}", str(self.assets_dir))
            return HTMLResponse(html, status_code=503)
        return HTMLResponse(PAGE)

    async def asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name == "chatr-graphiql.js":
            path = _OWN / "graphiql.js"
        elif name in ASSETS:
            path = self.assets_dir / ASSETS[name]
        else:
            path = None
        if path is None or not path.is_file():
            body = {
                "errors": [
                    {
                        "message": f"No asset {name!r}.",
                        "extensions": {"code": ErrorCode.NOT_FOUND.value},
                    }
                ]
            }
            return respond(body, status=404, media=Media.JSON)
        return FileResponse(
            path,
            media_type=_MEDIA[path.suffix],
            headers={"Cache-Control": "public, max-age=3600"},
        )
