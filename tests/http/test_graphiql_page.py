"""GraphiQL is served by chatr from locally installed assets: the page names no other host,
every asset it loads is served here, and without the assets the page says how to get them."""

from __future__ import annotations

import re
from pathlib import Path

from chatr.http.graphiql import DEFAULT_ASSETS, GraphiQL
from chatr.settings import Settings
from tests.support.servers import RunningApp, in_process_app

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


async def test_the_graphiql_page_loads_only_assets_served_by_chatr(app: RunningApp) -> None:
    assert GraphiQL(DEFAULT_ASSETS).installed, "run scripts/bootstrap (npm ci in graphiql/)"
    page = await app.http.get("/graphql", headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", page.text)
    assets = re.findall(r"(?:src|href)=\"(/graphiql/assets/[^\"]+)\"", page.text)
    assert len(assets) >= 7
    for path in assets:
        asset = await app.http.get(path)
        assert asset.status_code == 200, path
        assert len(asset.content) > 100, path


async def test_nothing_else_under_node_modules_is_reachable(app: RunningApp) -> None:
    response = await app.http.get("/graphiql/assets/package.json")
    assert response.status_code == 404
    assert response.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    for path in ("..%2F..%2Fpyproject.toml", "graphiql%2Fpackage.json", "../../pyproject.toml"):
        assert (await app.http.get(f"/graphiql/assets/{path}")).status_code == 404


async def test_without_its_assets_the_page_says_how_to_install_them_and_loads_no_cdn(
    settings: Settings, database: str, tmp_path: Path
) -> None:
    configured = settings.with_overrides(graphiql_assets_dir=tmp_path / "node_modules")
    async with in_process_app(configured) as running:
        page = await running.http.get("/graphql", headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 503
    assert "npm ci --prefix graphiql" in page.text
    assert "<script" not in page.text


async def test_production_serves_no_graphiql(settings: Settings, database: str) -> None:
    configured = settings.with_overrides(environment="production")
    async with in_process_app(configured) as running:
        page = await running.http.get("/graphql", headers={"Accept": BROWSER_ACCEPT})
        asset = await running.http.get("/graphiql/assets/graphiql.js")
    assert "<html" not in page.text
    assert page.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert asset.status_code == 404
