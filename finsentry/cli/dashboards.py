"""`finsentry dashboards ...`: write the Grafana dashboards and provisioning, or push them."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from finsentry.settings import get_settings

app = typer.Typer(
    help="Grafana dashboards: build the JSON and provisioning files, or push them to a Grafana.", no_args_is_help=True
)


@app.command()
def build(
    output: Path = typer.Option(
        Path("grafana"),
        "--output",
        "-o",
        help="Directory to write into (default: ./grafana in the working directory; "
        "the repository's committed copy is dashboards/grafana/generated).",
    ),
    index_prefix: Optional[str] = typer.Option(
        None, help="Elasticsearch index prefix the datasources read (default: FINSENTRY_ES_INDEX_PREFIX)."
    ),
) -> None:
    """Write the dashboard JSON and the Grafana provisioning files (datasources, dashboard provider)."""
    from finsentry.dashboards.grafana.build import write

    for path in write(output, index_prefix or get_settings().es_index_prefix):
        typer.echo(str(path))


@app.command()
def push(
    url: Optional[str] = typer.Option(
        None, help="Grafana base URL, e.g. https://grafana.example.com (default: FINSENTRY_GRAFANA_URL)."
    ),
    token: Optional[str] = typer.Option(
        None,
        help="Service-account token with dashboard write access "
        "(default: FINSENTRY_GRAFANA_TOKEN; prefer the variable, "
        "a flag shows in the process list).",
    ),
    folder: str = typer.Option("finsentry", help="Uid (and title) of the folder the dashboards go into."),
) -> None:
    """Upload the dashboards to an existing Grafana (overwrites earlier versions with the same uid)."""
    from finsentry.dashboards.grafana.push import push as push_dashboards

    settings = get_settings()
    url = url or settings.grafana_url
    secret = token or (settings.grafana_token.get_secret_value() if settings.grafana_token else None)
    if not url or not secret:
        raise typer.BadParameter("give --url and --token, or set FINSENTRY_GRAFANA_URL and FINSENTRY_GRAFANA_TOKEN")
    from grafana_client.client import GrafanaException

    try:
        pushed = push_dashboards(url, secret, folder_uid=folder, folder_title=folder)
    except GrafanaException as exc:
        typer.echo(f"grafana at {url} refused the upload: {exc.message}", err=True)
        raise typer.Exit(1) from None
    for item in pushed:
        typer.echo(f"{item.uid}: version {item.version} at {url.rstrip('/')}{item.url or ''}")
