"""The Faust application factory: one typed Settings in, the agents' app out.

The web page and /api are mounted on it by the worker's composition root
(finsentry/cli/worker_app.py), which is the one place that knows both streams/ and dashboards/.
"""

from __future__ import annotations

import logging

import faust

from finsentry.kafka import KafkaAuth
from finsentry.settings import Settings
from finsentry.streams.agents import alert, index, labels, model_updates, score, validate
from finsentry.streams.consumer_lag import register_lag_collector
from finsentry.streams.runtime import Runtime
from finsentry.streams.topics import Topics
from finsentry.streams.transport import SCHEME

log = logging.getLogger("finsentry.worker")


def broker_credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """Faust's spelling of finsentry/kafka.py's TLS and SASL settings (None for PLAINTEXT)."""
    auth = KafkaAuth.from_settings(settings)
    if auth.sasl:
        return faust.SASLCredentials(
            username=auth.username,
            password=auth.password,
            mechanism=auth.sasl_mechanism,
            ssl_context=auth.ssl_context(),
        )
    if auth.tls:
        return faust.SSLCredentials(auth.ssl_context())
    return None


def faust_config(settings: Settings) -> dict:
    config = dict(
        broker=settings.broker,
        broker_consumer=[f"{SCHEME}://{address}" for address in settings.broker_address.split(",")],
        broker_credentials=broker_credentials(settings),
        store="memory://",  # tables are rebuilt from their changelog topics on start
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_heartbeat_interval=settings.broker_heartbeat_s,
        producer_acks=-1,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=True,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        web_host=settings.web_host,
        datadir=str(settings.data_dir / "faust"),
        table_cleanup_interval=60.0,
    )
    if settings.broker_embedded:
        # tansu answers ListOffsets(LATEST) per batch, not per record (streams/broker.py), and
        # Faust's table recovery reads changelogs up to that answer: one record per batch.
        config.update(producer_max_batch_size=1, producer_linger=0.0)
    return config


def create_app(settings: Settings, runtime: Runtime | None = None, agents: tuple[str, ...] | None = None) -> faust.App:
    """Build the app with every agent (or the named subset, for focused tests)."""
    app = faust.App(settings.app_id, autodiscover=False, **faust_config(settings))
    app.conf.finsentry_fetch_max_wait_ms = settings.consumer_fetch_max_wait_ms
    rt = runtime or Runtime(settings)
    rt.topics = Topics.declare(app, settings)
    app.finsentry = rt  # type: ignore[attr-defined]  # the web views and tests reach the runtime here

    modules = {
        "validate": validate,
        "score": score,
        "index": index,
        "alert": alert,
        "labels": labels,
        "model_updates": model_updates,
    }
    for name in agents or tuple(modules):
        modules[name].register(app, rt)

    register_lag_collector(app, interval_s=5.0)

    @app.task(on_leader=False)
    async def start_runtime() -> None:
        await rt.start()

    @app.on_before_shutdown.connect
    async def stop_runtime(app, **kwargs) -> None:  # flush the outbox and close the store cleanly
        await rt.stop()

    return app
