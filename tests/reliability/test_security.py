"""Security: listeners bind loopback by default, tokens are required where configured,
secrets never reach logs or `finsentry settings`, and Kafka SASL/TLS and Elasticsearch TLS
settings reach the clients that finsentry builds.

Elasticsearch TLS is checked on a real TLS connection: a TLS terminator with a certificate
from a throw-away CA (openssl) in front of osmem-server, which stands in for Elasticsearch.
Kafka SASL/TLS cannot be exercised against the embedded broker, so the test checks the
configuration each Kafka client is built with.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from reliability_harness import SECRETS
from system_deps import require_binary

from finsentry.settings import Settings
from finsentry.streams.broker import free_port

pytestmark = pytest.mark.reliability

LOOPBACK = {"127.0.0.1", "::1"}


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket in LISTEN state on `port` (from /proc/net/tcp{,6})."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if fields[3] != "0A" or int(hex_port, 16) != port:
                continue
            raw = bytes.fromhex(address)
            if width == 8:
                found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
            else:  # four little-endian 32-bit words
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                found.add(socket.inet_ntop(socket.AF_INET6, words))
    return found


def http(url: str, data: bytes | None = None, headers: dict | None = None) -> int:
    request = urllib.request.Request(
        url, data=data, headers=headers or {}, method="POST" if data is not None else "GET"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def cli_env(**settings) -> dict[str, str]:
    """The environment of a finsentry command: no FINSENTRY_* from outside, the secrets in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINSENTRY_")}
    env.update({f"FINSENTRY_{k.upper()}": str(v) for k, v in {**SECRETS, **settings}.items()})
    return env


# --- binding ---------------------------------------------------------------------------------


def test_every_listener_binds_loopback_by_default():
    settings = Settings(_env_file=None)
    for name in ("web_host", "push_host", "scrape_metrics_host", "trainer_metrics_host"):
        assert getattr(settings, name) in LOOPBACK, f"{name} defaults to {getattr(settings, name)}"


def test_worker_web_server_listens_on_loopback_only(shared_pipeline):
    addresses = listening_addresses(shared_pipeline.settings.web_port)
    assert addresses and addresses <= LOOPBACK, addresses


# --- tokens ----------------------------------------------------------------------------------


def test_dashboard_api_requires_the_configured_token(shared_pipeline):
    base = f"http://127.0.0.1:{shared_pipeline.settings.web_port}"
    token = SECRETS["web_token"]
    assert http(f"{base}/api/stats") == 401
    assert http(f"{base}/api/stats", headers={"X-Finsentry-Token": "wrong"}) == 401
    assert http(f"{base}/") == 401
    assert http(f"{base}/api/stats", headers={"X-Finsentry-Token": token}) == 200
    assert http(f"{base}/api/stats?token={token}") == 200
    # Prometheus and health checks need no secret; they expose no documents. (/healthz says
    # 503 until the worker holds its partitions: either answer shows it needs no token.)
    assert http(f"{base}/metrics") == 200 and http(f"{base}/healthz") in (200, 503)


def test_push_endpoint_binds_loopback_and_requires_its_token(broker, tmp_path):
    port = free_port()
    env = cli_env(
        broker=broker.url,
        broker_embedded="true",
        topic_prefix=f"sec-{uuid.uuid4().hex[:6]}.",
        push_port=port,
        log_level="DEBUG",
    )
    log = tmp_path / "push.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "finsentry.cli", "push"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while not listening_addresses(port) and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.2)
        assert listening_addresses(port) <= LOOPBACK and listening_addresses(port), log.read_text()
        url = f"http://127.0.0.1:{port}/documents"
        body = b'[{"source": "security-test", "text": "Shares steady"}]'
        json_type = {"Content-Type": "application/json"}
        assert http(url, body, json_type) == 401
        assert http(url, body, {**json_type, "Authorization": "Bearer wrong"}) == 401
        assert http(url, body, {**json_type, "Authorization": f"Bearer {SECRETS['push_token']}"}) == 202
    finally:
        proc.terminate()
        proc.wait(30)
    output = log.read_text(errors="replace")
    assert not [name for name, value in SECRETS.items() if value in output], output[-2000:]


def test_push_endpoint_refuses_to_start_without_a_token(broker):
    env = cli_env(broker=broker.url, broker_embedded="true", push_port=free_port())
    del env["FINSENTRY_PUSH_TOKEN"]
    result = subprocess.run(
        [sys.executable, "-m", "finsentry.cli", "push"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "token" in result.stderr.lower()


# --- secrets out of logs and output ------------------------------------------------------------


def test_worker_log_holds_no_secret(shared_pipeline):
    log = shared_pipeline.logs()
    assert "worker ready" in log  # the log is there and written at INFO
    assert not [name for name, value in SECRETS.items() if value in log]


def test_settings_command_masks_secrets():
    result = subprocess.run(
        [sys.executable, "-m", "finsentry.cli", "settings"],
        env=cli_env(kafka_security_protocol="SASL_SSL", kafka_username="svc-finsentry", es_api_key="es-api-key-Pw83Zn"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "# FINSENTRY_ES_PASSWORD is set but not shown" in result.stdout  # named, as a comment
    assert "# FINSENTRY_ES_API_KEY is set but not shown" in result.stdout
    assert "FINSENTRY_KAFKA_USERNAME=svc-finsentry" in result.stdout  # not a secret: shown
    for value in [*SECRETS.values(), "es-api-key-Pw83Zn"]:
        assert value not in result.stdout + result.stderr


RSS = """<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><link>http://x/</link>
<description>d</description><item><title>Bank shares slide on credit worries</title>
<link>{base}/a</link><guid>{base}/a</guid><pubDate>Mon, 04 Mar 2024 09:00:00 GMT</pubDate>
<description>Bank shares slid on Monday as credit worries spread.</description></item></channel></rss>"""


def test_scraper_log_holds_no_secret(broker, tmp_path):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Feed(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/feed.xml":
                self.send_error(404)
                return
            body = RSS.format(base=f"http://127.0.0.1:{self.server.server_port}").encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Feed)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sources = tmp_path / "sources.yml"
    sources.write_text(
        f"sources:\n  - type: rss\n    name: local-feed\n"
        f"    url: http://127.0.0.1:{server.server_port}/feed.xml\n    interval: 5m\n"
    )
    try:
        result = subprocess.run(
            [sys.executable, "-m", "finsentry.cli", "scrape", "--once", "--config", str(sources)],
            env=cli_env(
                broker=broker.url,
                broker_embedded="true",
                topic_prefix=f"sec-{uuid.uuid4().hex[:6]}.",
                seen_path=tmp_path / "seen.db",
                log_level="DEBUG",
                per_host_interval_s=0.1,
            ),
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        server.shutdown()
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "local-feed" in output  # it did log, at DEBUG
    assert not [name for name, value in SECRETS.items() if value in output]


# The trainer and the retention job log in to the store with its credentials; osmem-server
# stands in for Elasticsearch.


@pytest.fixture
def credentialed_store(tmp_path):
    from osmem_server import OsmemServer

    server = OsmemServer.start(japanese=False)
    yield f"{server.url.rstrip('/')}?compat=opensearch"
    server.close()


def store_with_an_old_document(url: str, days_old: int) -> None:
    """Writes one scored document published `days_old` days ago (its own daily index)."""
    from datetime import datetime, timedelta, timezone

    from finsentry.records import ScoredDocument, Sentiment, Topic
    from finsentry.store import open_store

    when = datetime.now(timezone.utc) - timedelta(days=days_old)
    doc = ScoredDocument(
        id="old-story",
        source="wire",
        text="Bank shares slide on credit worries",
        published_at=when,
        ingested_at=when.timestamp(),
        model_version="v-test",
        sentiment=Sentiment(
            label="negative", score=-0.75, probabilities={"negative": 0.8, "neutral": 0.15, "positive": 0.05}
        ),
        topic=Topic(label="Markets", probability=0.9),
    )

    async def write():
        async with open_store(
            url, Settings(_env_file=None, es_username="finsentry", es_replicas=0, **SECRETS)
        ) as store:
            assert (await store.upsert_many([doc])).stored == 1

    asyncio.run(write())


def test_store_prune_output_holds_no_secret(credentialed_store):
    store_with_an_old_document(credentialed_store, days_old=40)
    env = cli_env(
        store=credentialed_store, es_username="finsentry", es_replicas=0, log_level="DEBUG", store_retry_budget_s=0.5
    )
    pruned = subprocess.run(
        [sys.executable, "-m", "finsentry.cli", "store", "prune", "--days", "30"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert pruned.returncode == 0, pruned.stderr[-3000:]
    assert "deleted 1 documents" in pruned.stdout and "store pruned" in pruned.stderr  # it did log
    # An unreachable store, with credentials in its URL too: the error names the store, not them.
    unreachable = f"http://finsentry:{SECRETS['es_password']}@127.0.0.1:{free_port()}?compat=opensearch"
    failed = subprocess.run(
        [sys.executable, "-m", "finsentry.cli", "store", "prune", "--store", unreachable],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert failed.returncode == 1 and "error:" in failed.stderr
    for result in (pruned, failed):
        output = result.stdout + result.stderr
        assert not [name for name, value in SECRETS.items() if value in output], output[-3000:]


def test_trainer_log_holds_no_secret(broker, credentialed_store, tmp_path):
    """`finsentry trainer` starts (store, registry, /metrics), runs its first tick — nothing
    is due: the schedule is weekly, the first drift check five minutes away — and stops on
    SIGTERM."""
    env = cli_env(
        broker=broker.url,
        broker_embedded="true",
        store=credentialed_store,
        es_username="finsentry",
        es_replicas=0,
        log_level="DEBUG",
        trainer_metrics_port=free_port(),
        registry_dir=tmp_path / "registry",
        data_dir=tmp_path / "data",
        train_data_dir=tmp_path / "tfn",
        train_extra_dir=tmp_path / "extra",
    )
    log = tmp_path / "trainer.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "finsentry.cli", "trainer"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while "trainer started" not in log.read_text(errors="replace"):
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "the trainer did not start:\n" + log.read_text(errors="replace")[-3000:]
            time.sleep(0.2)
        proc.terminate()
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log.read_text(errors="replace")
    assert "trainer stopped" in output
    assert not [name for name, value in SECRETS.items() if value in output], output[-3000:]


# --- Kafka SASL/TLS reach the clients --------------------------------------------------------


def kafka_tls_settings(tmp_path: Path, protocol: str) -> Settings:
    ca = make_ca(tmp_path)["ca"]
    return Settings(
        _env_file=None,
        broker="kafka://k1:9093;k2:9093",
        kafka_security_protocol=protocol,
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_username="svc-finsentry",
        kafka_password=SECRETS["kafka_password"],
        kafka_ca_file=ca,
    )


@pytest.mark.parametrize("protocol", ["SASL_SSL", "SASL_PLAINTEXT", "SSL"])
def test_kafka_security_settings_reach_every_client(tmp_path, protocol):
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    from finsentry.ingest.producer import producer_config
    from finsentry.kafka import aiokafka_security as kafka_security
    from finsentry.streams.app import create_app

    settings = kafka_tls_settings(tmp_path, protocol)
    sasl = protocol.startswith("SASL")
    tls = protocol.endswith("SSL")
    ca_subject = ssl.create_default_context(cafile=str(settings.kafka_ca_file)).get_ca_certs()[0]["subject"]

    def check_ssl_context(context):
        if tls:
            assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED
            assert any(c["subject"] == ca_subject for c in context.get_ca_certs())  # our CA is trusted
        else:
            assert context is None

    # The Faust workers (agents, tables, the consumer-lag collector): what Faust's aiokafka
    # driver builds its consumer and producer from.
    app = create_app(settings)
    auth = credentials_to_aiokafka_auth(app.conf.broker_credentials, app.conf.ssl_context)
    assert auth["security_protocol"] == protocol
    check_ssl_context(auth.get("ssl_context"))
    if sasl:
        assert auth["sasl_mechanism"] == "SCRAM-SHA-512"
        assert auth["sasl_plain_username"] == "svc-finsentry"
        assert auth["sasl_plain_password"] == SECRETS["kafka_password"]

    # The model-updates reader (a plain aiokafka consumer outside the group).
    updates = kafka_security(settings)
    assert updates["security_protocol"] == protocol
    check_ssl_context(updates.get("ssl_context"))
    if sasl:
        assert (updates["sasl_mechanism"], updates["sasl_plain_username"], updates["sasl_plain_password"]) == (
            "SCRAM-SHA-512",
            "svc-finsentry",
            SECRETS["kafka_password"],
        )

    # The ingest producer (scrapers, push, `finsentry ingest`) and the trainer's publisher.
    producer = producer_config(settings)
    assert producer["security_protocol"] == protocol
    assert producer["bootstrap_servers"] == ["k1:9093", "k2:9093"]
    if tls:
        assert producer["ssl_cafile"] == str(settings.kafka_ca_file)
    if sasl:
        assert (producer["sasl_mechanism"], producer["sasl_plain_username"], producer["sasl_plain_password"]) == (
            "SCRAM-SHA-512",
            "svc-finsentry",
            SECRETS["kafka_password"],
        )
    assert SECRETS["kafka_password"] not in repr(settings)  # a settings dump never shows it


# --- Elasticsearch TLS, on a real TLS connection ----------------------------------------------


def make_ca(directory: Path) -> dict[str, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1/localhost, made with openssl."""
    openssl = require_binary("openssl")
    d = directory / "pki"
    if (d / "server.pem").exists():
        return {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key"}
    d.mkdir(parents=True, exist_ok=True)

    def run(*args):
        subprocess.run([openssl, *args], cwd=d, check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=finsentry test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    )
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr")
    (d / "san.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.cnf",
        "-out",
        "server.pem",
    )
    return {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key"}


class TlsTerminator:
    """Accepts TLS on loopback and pipes the plain bytes to `upstream` (host, port),
    remembering the Authorization headers it saw."""

    def __init__(self, upstream: tuple[str, int], cert: Path, key: Path):
        self.upstream = upstream
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.authorizations: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self._server = self.loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.context))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()
        self.loop.close()

    async def _serve(self, client_reader, client_writer):
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_writer.close()
            return

        async def pipe(reader, writer, sniff: bool):
            try:
                while data := await reader.read(65536):
                    if sniff:
                        for line in data.split(b"\r\n"):
                            if line.lower().startswith(b"authorization:"):
                                self.authorizations.append(line.split(b":", 1)[1].strip().decode())
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, ssl.SSLError):
                pass
            finally:
                writer.close()

        await asyncio.gather(pipe(client_reader, upstream_writer, True), pipe(upstream_reader, client_writer, False))

    def close(self):
        async def shutdown():
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@pytest.fixture
def tls_store_server(tmp_path):
    from osmem_server import OsmemServer

    pki = make_ca(tmp_path)
    server = OsmemServer.start(japanese=False)  # stands in for Elasticsearch
    host, port = server.url.split("://", 1)[1].split(":")
    terminator = TlsTerminator((host, int(port.rstrip("/"))), pki["cert"], pki["key"])
    yield terminator, pki
    terminator.close()
    server.close()


async def store_count(url: str, settings: Settings) -> int:
    from finsentry.store import open_store

    store = open_store(url, settings)
    await store.open()
    try:
        return await store.count()
    finally:
        await store.close()


def test_elasticsearch_tls_and_credentials_reach_the_client(tls_store_server):
    from finsentry.store import StoreUnavailable

    terminator, pki = tls_store_server
    url = f"https://127.0.0.1:{terminator.port}?compat=opensearch"
    base = dict(
        _env_file=None,
        es_username="finsentry",
        es_password=SECRETS["es_password"],
        es_replicas=0,
        store_retry_budget_s=0.5,
        es_request_timeout_s=5.0,
    )

    # Our CA configured: the certificate verifies, the credentials go along.
    assert asyncio.run(store_count(url, Settings(**base, es_ca_certs=pki["ca"]))) == 0
    expected = "Basic " + base64.b64encode(f"finsentry:{SECRETS['es_password']}".encode()).decode()
    assert terminator.authorizations and set(terminator.authorizations) == {expected}

    # Without it, verification fails: the store refuses to talk (and to send the password)
    # rather than trust an unknown server.
    seen = len(terminator.authorizations)
    with pytest.raises((StoreUnavailable, OSError, ssl.SSLError)) as refused:
        asyncio.run(store_count(url, Settings(**base)))
    assert any(word in str(refused.value).lower() for word in ("certificate", "ssl", "tls"))
    assert len(terminator.authorizations) == seen

    # Verification switched off explicitly (FINSENTRY_ES_VERIFY_CERTS=false): it connects.
    assert asyncio.run(store_count(url, Settings(**base, es_verify_certs=False))) == 0
