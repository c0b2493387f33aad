"""`finsentry dashboards build` and `push`. Grafana itself cannot run here, so `push` is
tested against a small aiohttp server that imitates the part of Grafana's HTTP API it uses
(folders and dashboards/db, bearer-token auth) and records what it received."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from aiohttp import web
from typer.testing import CliRunner

from finsentry.cli.dashboards import app
from finsentry.dashboards.grafana import build

TOKEN = "glsa_test_token"


class FakeGrafana:
    """Imitates Grafana's folder and dashboard endpoints, in a thread with its own loop."""

    def __init__(self):
        self.folders: dict[str, dict] = {}
        self.dashboards: dict[str, dict] = {}
        self.requests: list[tuple[str, str]] = []
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()

    def authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {TOKEN}"

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path))
        if not self.authorised(request):
            return web.json_response({"message": "invalid API key"}, status=401)
        if request.method == "GET" and request.path.startswith("/api/folders/"):
            uid = request.path.rsplit("/", 1)[-1]
            if uid not in self.folders:
                return web.json_response({"message": "folder not found"}, status=404)
            return web.json_response(self.folders[uid])
        if request.method == "POST" and request.path == "/api/folders":
            body = await request.json()
            self.folders[body["uid"]] = {"uid": body["uid"], "title": body["title"], "id": len(self.folders) + 1}
            return web.json_response(self.folders[body["uid"]])
        if request.method == "POST" and request.path == "/api/dashboards/db":
            body = await request.json()
            dashboard = body["dashboard"]
            if body.get("folderUid") not in self.folders:
                return web.json_response({"message": "folder not found"}, status=400)
            previous = self.dashboards.get(dashboard["uid"])
            if previous and not body.get("overwrite"):
                return web.json_response({"message": "dashboard exists"}, status=412)
            version = previous["version"] + 1 if previous else 1
            self.dashboards[dashboard["uid"]] = {"body": body, "version": version}
            return web.json_response(
                {
                    "status": "success",
                    "uid": dashboard["uid"],
                    "version": version,
                    "url": f"/d/{dashboard['uid']}/x",
                    "id": 1,
                }
            )
        return web.json_response({"message": "not found"}, status=404)

    def __enter__(self) -> "FakeGrafana":
        threading.Thread(target=self._serve, daemon=True).start()
        assert self._started.wait(10)
        return self

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = web.Application()
        server.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(server)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        self._started.set()
        self._loop.run_forever()

    def __exit__(self, *exc) -> None:
        async def stop():
            await self._runner.cleanup()
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(stop(), self._loop)


@pytest.fixture
def grafana():
    with FakeGrafana() as fake:
        yield fake


def test_build_writes_the_committed_files(tmp_path):
    result = CliRunner().invoke(app, ["build", "--output", str(tmp_path), "--index-prefix", "finsentry"])
    assert result.exit_code == 0, result.output
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert [str(p) for p in written] == sorted(line.replace(f"{tmp_path}/", "") for line in result.output.split())
    for path in written:
        assert (tmp_path / path).read_text() == (build.GENERATED_DIR / path).read_text()


def test_build_writes_into_the_working_directory_by_default(tmp_path, monkeypatch):
    committed = {p: p.stat().st_mtime_ns for p in build.GENERATED_DIR.rglob("*") if p.is_file()}
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["build"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "grafana" / "provisioning/datasources/finsentry.yml").is_file()
    assert all(line.startswith("grafana/") for line in result.output.split())
    assert {p: p.stat().st_mtime_ns for p in build.GENERATED_DIR.rglob("*") if p.is_file()} == committed


def test_build_follows_the_index_prefix(tmp_path):
    result = CliRunner().invoke(app, ["build", "--output", str(tmp_path), "--index-prefix", "risk-eu"])
    assert result.exit_code == 0, result.output
    provisioning = (tmp_path / "provisioning/datasources/finsentry.yml").read_text()
    assert "index: risk-eu-docs" in provisioning and "index: risk-eu-alerts" in provisioning


def test_push_creates_the_folder_then_uploads_every_dashboard(grafana):
    result = CliRunner().invoke(app, ["push", "--url", grafana.url, "--token", TOKEN])
    assert result.exit_code == 0, result.output
    assert grafana.folders == {"finsentry": {"uid": "finsentry", "title": "finsentry", "id": 1}}
    uids = {d.uid for d in build.dashboards()}
    assert set(grafana.dashboards) == uids
    for uid, stored in grafana.dashboards.items():
        body = stored["body"]
        assert body["overwrite"] is True and body["folderUid"] == "finsentry"
        assert body["dashboard"] == json.loads((build.GENERATED_DIR / f"dashboards/{uid}.json").read_text())
        assert f"{uid}: version 1" in result.output

    again = CliRunner().invoke(app, ["push", "--url", grafana.url, "--token", TOKEN])
    assert again.exit_code == 0, again.output
    assert [r for r in grafana.requests if r == ("POST", "/api/folders")] == [("POST", "/api/folders")]
    assert {s["version"] for s in grafana.dashboards.values()} == {2}


def test_push_with_a_wrong_token_fails_and_uploads_nothing(grafana):
    result = CliRunner().invoke(app, ["push", "--url", grafana.url, "--token", "wrong"])
    assert result.exit_code == 1
    assert "refused the upload" in result.output and "wrong" not in result.output
    assert grafana.dashboards == {}


def test_push_needs_a_url_and_a_token(monkeypatch):
    from finsentry.settings import get_settings

    monkeypatch.delenv("FINSENTRY_GRAFANA_URL", raising=False)
    monkeypatch.delenv("FINSENTRY_GRAFANA_TOKEN", raising=False)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["push"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code != 0
    assert "FINSENTRY_GRAFANA_TOKEN" in result.output
