"""The production stack's files agree with the code: docker-compose.yml validates (with
docker-compose, Debian package), every finsentry service runs a real `finsentry` command,
every mounted file exists, the topic-init job creates exactly the app's topics, Prometheus
scrapes services that exist, .env.example documents every setting.

No container engine runs here, so nothing is started; where a test needs the Kafka or
Elasticsearch command-line tools it uses a stand-in and says so.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from system_deps import require_binary

from finsentry.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
# What .env must set: the stack refuses to start without each.
PASSWORDS = {
    "ELASTIC_PASSWORD": "elastic-test",
    "GRAFANA_ADMIN_PASSWORD": "grafana-test",
    "FINSENTRY_ES_PASSWORD": "finsentry-test",
    "GRAFANA_ES_PASSWORD": "grafana-reader-test",
    "KAFKA_CLUSTER_ID": "MkU3OEVBNTcwNTJENDM2Qk",
}
PROFILES = ["--profile", "gpu", "--profile", "push"]
FINSENTRY_IMAGES = ("finsentry:cpu", "finsentry:cuda")
JOBS = {"topic-init", "es-certs", "es-user"}
FINSENTRY = str(
    Path(sys.executable).with_name("finsentry")
)  # the installed console script  # one-shot: gated by service_completed_successfully


def compose(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    binary = require_binary("docker-compose")
    clean = {k: v for k, v in os.environ.items() if k not in PASSWORDS and not k.startswith("FINSENTRY_")}
    full_env = {**clean, "FINSENTRY_ENV_FILE": ".env.example", **(env or {})}
    return subprocess.run(
        [binary, "--project-directory", str(ROOT), "-f", str(COMPOSE), "--env-file", str(ENV_EXAMPLE), *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def resolved() -> dict:
    """The stack as docker-compose resolves it (every profile, .env.example + passwords)."""
    result = compose(*PROFILES, "config", env=PASSWORDS)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_file_validates():
    result = compose(*PROFILES, "config", "-q", env=PASSWORDS)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("missing", sorted(PASSWORDS))
def test_stack_refuses_to_start_without_a_password(missing):
    env = {k: v for k, v in PASSWORDS.items() if k != missing}
    result = compose("config", "-q", env=env)
    assert result.returncode != 0
    assert missing in result.stderr


def finsentry_services(config: dict) -> dict[str, dict]:
    return {name: svc for name, svc in config["services"].items() if svc.get("image") in FINSENTRY_IMAGES}


def test_every_finsentry_service_runs_a_real_command(resolved):
    services = finsentry_services(resolved)
    assert {"worker", "worker-gpu", "scraper", "push", "trainer", "retention"} <= set(services)
    for name, svc in services.items():
        command = svc["command"]
        # The (sub)command and its flags, checked by the real CLI: --help fails on an
        # unknown command; every flag must be one the command lists.
        words = [arg for arg in command if not arg.startswith("-") and not arg.startswith("/")]
        flags = [arg for arg in command if arg.startswith("--")]
        result = subprocess.run([FINSENTRY, *words, "--help"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"{name}: finsentry {' '.join(words)}: {result.stderr}"
        assert "Usage: finsentry " + " ".join(words) in " ".join(result.stdout.split())
        for flag in flags:
            assert flag in result.stdout, f"{name}: finsentry {' '.join(words)} has no option {flag}"


def test_shell_entrypoints_run_finsentry_with_the_command(resolved, tmp_path):
    """The shell wrappers (the workers' per-container outbox file, the retention loop) must
    still run finsentry with the service's command: run each with `finsentry` on PATH being
    a stand-in that records its arguments and fails, so the loop goes round once and stops."""
    recorder = tmp_path / "bin" / "finsentry"
    recorder.parent.mkdir()
    recorder.write_text('#!/bin/sh\necho "finsentry $*" >> "$CALLS"\nexit 3\n')
    recorder.chmod(0o755)
    wrapped = {n: s for n, s in finsentry_services(resolved).items() if "entrypoint" in s}
    assert {"worker", "worker-gpu", "retention", "trainer"} <= set(wrapped)
    for name, svc in wrapped.items():
        entrypoint = svc["entrypoint"]
        assert entrypoint[:4] == ["tini", "--", "sh", "-c"] and entrypoint[5] == "finsentry"
        calls = tmp_path / f"{name}.calls"
        env = {
            "PATH": f"{recorder.parent}:{os.environ['PATH']}",
            "CALLS": str(calls),
            "FINSENTRY_PRUNE_INTERVAL_S": "0.1",
            "OUTBOX_SLOT_DIR": str(tmp_path),
            "TRAINING_SEED_DIR": str(tmp_path / "no-seed"),
            "FINSENTRY_TRAIN_DATA_DIR": str(tmp_path / "tfn"),
        }
        script = entrypoint[4].replace("$$", "$")  # as the container sees it after compose's unescaping
        proc = subprocess.Popen(
            ["sh", "-c", script, "finsentry", *svc["command"]],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:  # wait for the first call (a loaded machine may take seconds); the retention loop runs on
            deadline = time.monotonic() + 60
            while not (calls.exists() and calls.read_text().endswith("\n")) and proc.poll() is None:
                assert time.monotonic() < deadline, f"{name}: no finsentry call within 60 s"
                time.sleep(0.05)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        assert calls.read_text().splitlines()[0] == "finsentry " + " ".join(svc["command"]), name


def bind_mounts(config: dict) -> list[tuple[str, str]]:
    mounts = []
    for name, svc in config["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith(("/", ".")):
                mounts.append((name, source))
    return mounts


def test_every_mounted_file_exists(resolved):
    mounts = bind_mounts(resolved)
    assert len(mounts) >= 8
    for service, source in mounts:
        assert Path(source).exists(), f"{service} mounts {source}, which does not exist"


def test_named_volumes_are_declared(resolved):
    declared = set(resolved.get("volumes", {}))
    for name, svc in resolved["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith(("/", ".")):
                assert source in declared, f"{name} uses undeclared volume {source}"


def test_long_running_services_have_health_checks(resolved):
    for name, svc in resolved["services"].items():
        if name in JOBS:
            assert svc.get("restart") == "no", f"job {name} must not restart"
            continue
        assert svc.get("healthcheck", {}).get("test"), f"{name} has no health check"
        assert svc.get("restart") == "unless-stopped", name


def test_workers_scale_and_gpu_variant_reserves_a_gpu(resolved):
    services = resolved["services"]
    assert int(services["worker"]["deploy"]["replicas"]) >= 2
    gpu = services["worker-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert gpu["build"]["target"] == "cuda" and services["worker"]["build"]["target"] == "cpu"
    assert gpu["environment"]["FINSENTRY_BACKEND"] == "cuda"
    assert "worker" in gpu["networks"]["default"]["aliases"]  # scraped with the CPU workers


def test_only_loopback_ports_are_published(resolved):
    for name, svc in resolved["services"].items():
        for port in svc.get("ports", []):
            text = port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port.get('published')}"
            assert text.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_elasticsearch_has_security_and_tls_on(resolved):
    env = resolved["services"]["elasticsearch"]["environment"]
    assert env["xpack.security.enabled"] == "true"
    assert env["xpack.security.http.ssl.enabled"] == "true"
    worker = resolved["services"]["worker"]["environment"]
    assert worker["FINSENTRY_STORE"].startswith("https://")
    assert worker["FINSENTRY_ES_CA_CERTS"] == "/certs/ca/ca.crt"


def test_prometheus_scrapes_services_that_exist(resolved):
    """Every target host in dashboards/prometheus/prometheus.yml is a compose service (or
    network alias) and its port is the one that service listens on."""
    config = yaml.safe_load((ROOT / "dashboards/prometheus/prometheus.yml").read_text())
    names = set(resolved["services"])
    for svc in resolved["services"].values():
        names |= set((svc.get("networks") or {}).get("default", {}).get("aliases") or [])
    listening = {
        "worker": resolved["services"]["worker"]["environment"]["FINSENTRY_WEB_PORT"],
        "scraper": resolved["services"]["scraper"]["environment"]["FINSENTRY_SCRAPE_METRICS_PORT"],
        "trainer": resolved["services"]["trainer"]["environment"]["FINSENTRY_TRAINER_METRICS_PORT"],
        "push": resolved["services"]["push"]["environment"]["FINSENTRY_PUSH_PORT"],
        "alertmanager": "9093",
        "kafka-exporter": "9308",
    }
    targets: list[tuple[str, str]] = []
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            targets += [tuple(t.split(":")) for t in static["targets"]]
        for dns in job.get("dns_sd_configs", []):
            targets += [(n, str(dns["port"])) for n in dns["names"]]
    for group in config["alerting"]["alertmanagers"]:
        for static in group["static_configs"]:
            targets += [tuple(t.split(":")) for t in static["targets"]]
    checked = 0
    for host, port in targets:
        if host == "localhost":
            continue
        assert host in names, f"Prometheus scrapes {host}, which is no compose service"
        assert listening[host] == port, f"{host} listens on {listening[host]}, Prometheus scrapes {port}"
        checked += 1
    assert checked >= 4


def test_grafana_gets_the_variables_its_provisioning_reads(resolved):
    provisioning = ROOT / "dashboards/grafana/generated/provisioning/datasources"
    wanted = set()
    for path in provisioning.glob("*.yml"):
        wanted |= set(re.findall(r"\$\{(\w+)\}", path.read_text()))
    assert wanted, "the datasource provisioning reads no variables?"
    env = resolved["services"]["grafana"]["environment"]
    assert wanted <= set(env), f"missing for Grafana: {wanted - set(env)}"


# --- topic-init -------------------------------------------------------------------------------

STUB_TOPICS = """#!/bin/sh
echo "kafka-topics.sh $*" >> "$CALLS"
case "$*" in *--describe*)
  printf 'Topic: x\\tTopicId: y\\tPartitionCount: %s\\tReplicationFactor: 1\\n' "$STUB_PARTITIONS";; esac
"""
STUB_CONFIGS = """#!/bin/sh
echo "kafka-configs.sh $*" >> "$CALLS"
"""


def run_create_topics(
    tmp_path: Path, existing_partitions: int, **env: str
) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run deploy/kafka/create-topics.sh with stand-ins for Kafka's kafka-topics.sh and
    kafka-configs.sh (Java tools of the Kafka image, which cannot run here) that record
    their arguments."""
    bin_dir = tmp_path / "kafka-bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in (("kafka-topics.sh", STUB_TOPICS), ("kafka-configs.sh", STUB_CONFIGS)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    calls = tmp_path / "calls.txt"
    calls.unlink(missing_ok=True)
    result = subprocess.run(
        ["sh", str(ROOT / "deploy/kafka/create-topics.sh")],
        capture_output=True,
        text=True,
        env={
            "PATH": os.environ["PATH"],
            "KAFKA_BIN": str(bin_dir),
            "CALLS": str(calls),
            "STUB_PARTITIONS": str(existing_partitions),
            **env,
        },
    )
    return result, calls.read_text().splitlines() if calls.exists() else []


def test_topic_init_creates_exactly_the_apps_topics(tmp_path):
    from finsentry.streams.app import create_app

    settings = Settings(_env_file=None, topic_prefix="acme.", app_id="acme-app", topic_partitions=12)
    app = create_app(settings)
    expected = set(app.finsentry.topics.names())
    expected |= {table.changelog_topic.get_topic_name() for table in app.tables.values()}

    result, calls = run_create_topics(
        tmp_path,
        12,
        FINSENTRY_TOPIC_PREFIX="acme.",
        FINSENTRY_APP_ID="acme-app",
        FINSENTRY_TOPIC_PARTITIONS="12",
        FINSENTRY_TOPIC_REPLICATION="3",
    )
    assert result.returncode == 0, result.stderr
    creates = [c.split() for c in calls if "--create" in c]
    created = {args[args.index("--topic") + 1] for args in creates}
    assert created == expected
    for args in creates:
        assert args[args.index("--partitions") + 1] == "12"
        assert args[args.index("--replication-factor") + 1] == "3"
        assert "--if-not-exists" in args
        assert "min.insync.replicas=2" in args  # three replicas: a write must reach two
    changelog = next(a for a in creates if a[a.index("--topic") + 1].endswith("-changelog"))
    assert "cleanup.policy=compact" in changelog
    raw = next(a for a in creates if a[a.index("--topic") + 1] == "acme.docs.raw")
    assert f"retention.ms={7 * 86400000}" in raw
    alters = [c for c in calls if "--alter" in c]
    assert len(alters) == len(expected)  # retention brought up to date on every run
    assert "warning" not in result.stderr


def test_topic_init_reports_but_never_changes_partitions(tmp_path):
    result, calls = run_create_topics(tmp_path, 4, FINSENTRY_TOPIC_PARTITIONS="12")
    assert result.returncode == 0, result.stderr
    assert "has 4 partitions" in result.stderr
    assert not any("--partitions" in c and "--alter" in c for c in calls)


def test_topic_init_fails_when_kafka_does(tmp_path):
    bin_dir = tmp_path / "kafka-bin"
    bin_dir.mkdir()
    (bin_dir / "kafka-topics.sh").write_text("#!/bin/sh\necho 'Timed out waiting for a node' >&2\nexit 1\n")
    (bin_dir / "kafka-topics.sh").chmod(0o755)
    result = subprocess.run(
        ["sh", str(ROOT / "deploy/kafka/create-topics.sh")],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "KAFKA_BIN": str(bin_dir)},
    )
    assert result.returncode != 0  # the workers (service_completed_successfully) wait


# --- Elasticsearch user job ----------------------------------------------------------------


class SecurityApiStandIn(BaseHTTPRequestHandler):
    """Records PUT /_security/... requests: a stand-in for Elasticsearch's security API
    (osmem-server does not implement it)."""

    received: list[dict] = []

    def do_PUT(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        SecurityApiStandIn.received.append(
            {
                "path": self.path,
                "auth": self.headers.get("Authorization"),
                "type": self.headers.get("Content-Type"),
                "body": json.loads(body),
            }
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"created": true}')

    def log_message(self, *args):
        pass


def test_es_user_job_creates_a_restricted_user_without_exposing_passwords(tmp_path):
    curl = require_binary("curl")
    server = ThreadingHTTPServer(("127.0.0.1", 0), SecurityApiStandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    SecurityApiStandIn.received = []
    # curl on PATH is a wrapper that records its argv, then runs the real curl.
    wrapper_dir = tmp_path / "bin"
    wrapper_dir.mkdir()
    argv_log = tmp_path / "argv.txt"
    (wrapper_dir / "curl").write_text(f'#!/bin/sh\necho "$*" >> {argv_log}\nexec {curl} "$@"\n')
    (wrapper_dir / "curl").chmod(0o755)
    superuser, service, reader = 'su"per\\secret', 'fin"sentry\\pw', 'gra"fana\\pw'
    try:
        result = subprocess.run(
            ["bash", str(ROOT / "deploy/elasticsearch/create-user.sh")],
            capture_output=True,
            text=True,
            timeout=60,
            env={
                "PATH": f"{wrapper_dir}:{os.environ['PATH']}",
                "ES_URL": f"http://127.0.0.1:{server.server_port}",
                "ES_CA": str(tmp_path / "unused-ca.crt"),
                "ELASTIC_PASSWORD": superuser,
                "FINSENTRY_ES_USERNAME": "finsentry",
                "FINSENTRY_ES_PASSWORD": service,
                "FINSENTRY_ES_INDEX_PREFIX": "acme",
                "GRAFANA_ES_USERNAME": "finsentry-grafana",
                "GRAFANA_ES_PASSWORD": reader,
            },
        )
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stderr
    role, user, reader_role, reader_user = SecurityApiStandIn.received
    # Grafana's user only reads: no write, manage or delete privilege anywhere.
    assert reader_role["path"] == "/_security/role/finsentry_reader"
    assert reader_role["body"]["cluster"] == ["monitor"]
    assert reader_role["body"]["indices"] == [{"names": ["acme*"], "privileges": ["read", "view_index_metadata"]}]
    assert reader_user["path"] == "/_security/user/finsentry-grafana"
    assert reader_user["body"]["password"] == reader and reader_user["body"]["roles"] == ["finsentry_reader"]
    assert role["path"] == "/_security/role/finsentry"
    assert role["body"]["indices"][0]["names"] == ["acme*"]
    assert "all" not in role["body"]["cluster"]
    assert user["path"] == "/_security/user/finsentry"
    assert user["body"]["password"] == service and user["body"]["roles"] == ["finsentry"]
    for request in (role, user):
        assert request["auth"] == "Basic " + base64.b64encode(f"elastic:{superuser}".encode()).decode()
        assert request["type"] == "application/json"
    argv = argv_log.read_text()
    assert "secret" not in argv and "sentry\\pw" not in argv and "fana\\pw" not in argv  # never on a command line
    assert "secret" not in result.stdout + result.stderr and "pw" not in result.stdout + result.stderr


# --- .env.example and Dockerfile ------------------------------------------------------------


def test_env_example_documents_every_setting_and_stack_variable():
    text = ENV_EXAMPLE.read_text()
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    settings = {f"FINSENTRY_{name.upper()}" for name in Settings.model_fields}
    assert settings - documented == set(), "a new setting: run python deploy/env_example.py > .env.example"
    # `$${...}` is the container shell's, not compose's: not read from .env.
    used = set(re.findall(r"(?<!\$)\$\{(\w+)", COMPOSE.read_text()))
    assert used - documented == set(), "docker-compose.yml reads variables .env.example does not document"


def test_env_example_holds_no_secret_values():
    values = dict(
        line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if line and not line.startswith("#")
    )
    for name in (
        "ELASTIC_PASSWORD",
        "GRAFANA_ADMIN_PASSWORD",
        "FINSENTRY_ES_PASSWORD",
        "GRAFANA_ES_PASSWORD",
        "KAFKA_CLUSTER_ID",
    ):
        assert values[name] == "", f"{name} must be empty in the example"


def env_example_check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "deploy/env_example.py"), "--check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_env_example_is_generated_from_the_settings(tmp_path):
    """.env.example is exactly what deploy/env_example.py writes now, and --check notices a
    file that has drifted from the settings."""
    result = env_example_check(ENV_EXAMPLE)
    assert result.returncode == 0, result.stderr
    stale = tmp_path / ".env.example"
    stale.write_text(ENV_EXAMPLE.read_text().replace("FINSENTRY_MAX_BATCH=", "FINSENTRY_MAX_BATCH_OLD=", 1))
    result = env_example_check(stale)
    assert result.returncode == 1 and "out of date" in result.stderr


def test_dockerfile_has_cpu_and_cuda_targets_and_cpu_is_default():
    stages = re.findall(
        r"^FROM\s+\S+\s+AS\s+(\S+)", (ROOT / "Dockerfile").read_text(), flags=re.MULTILINE | re.IGNORECASE
    )
    assert {"cpu", "cuda"} <= set(stages)
    assert stages[-1] == "cpu"  # `docker build .` without --target builds the CPU image
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".env" in ignored and ".git" in ignored  # secrets and history stay out of the image


# --- notifications survive container recreation -----------------------------------------------

STAND_IN_WORKER = """#!/bin/sh
echo "$FINSENTRY_OUTBOX_PATH" > "$REPORT_DIR/$NAME"
while [ ! -e "$REPORT_DIR/stop-$NAME" ]; do sleep 0.05; done
"""


def test_worker_outbox_slots_are_taken_over_by_a_recreated_container(resolved, tmp_path):
    """Each worker takes the lowest outbox slot no running worker holds; when a container is
    removed (recreated, scaled down and up), the next worker to start takes its slot and so
    sends what it left pending. Runs the real entrypoint with a stand-in `finsentry` that
    reports its outbox path and waits; `flock` is the one the image has (util-linux)."""
    require_binary("flock")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "finsentry").write_text(STAND_IN_WORKER)
    (bin_dir / "finsentry").chmod(0o755)
    outbox, reports = tmp_path / "outbox", tmp_path / "reports"
    outbox.mkdir()
    reports.mkdir()
    svc = resolved["services"]["worker"]
    script = svc["entrypoint"][4].replace("$$", "$")
    assert svc["entrypoint"][:4] == ["tini", "--", "sh", "-c"]
    assert "hostname" not in script  # a container's hostname changes when it is recreated
    assert resolved["services"]["worker-gpu"]["entrypoint"] == svc["entrypoint"]
    running: dict[str, subprocess.Popen] = {}

    def start(name: str) -> str:
        env = {
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "OUTBOX_SLOT_DIR": str(outbox),
            "REPORT_DIR": str(reports),
            "NAME": name,
        }
        running[name] = subprocess.Popen(
            ["sh", "-c", script, "finsentry", *svc["command"]],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        report = reports / name
        deadline = time.monotonic() + 60
        while not (report.exists() and report.read_text().strip()):
            assert running[name].poll() is None, f"{name} exited without starting finsentry"
            assert time.monotonic() < deadline, f"{name} reported no outbox"
            time.sleep(0.05)
        return Path(report.read_text().strip()).name

    def remove(name: str) -> None:
        (reports / f"stop-{name}").touch()
        running.pop(name).wait(timeout=60)

    try:
        assert start("worker-1") == "slot-0.db"
        assert start("worker-2") == "slot-1.db"
        remove("worker-1")  # docker compose up after a change: a new container replaces it
        assert start("worker-1-recreated") == "slot-0.db"
        assert start("worker-3") == "slot-2.db"
    finally:
        for name in list(running):
            (reports / f"stop-{name}").touch()
            running[name].kill()
            running[name].wait()


# --- trainer data, Grafana, Kafka -------------------------------------------------------------


def test_trainer_seeds_its_empty_volume_without_overwriting(resolved, tmp_path):
    svc = resolved["services"]["trainer"]
    script = svc["entrypoint"][4].replace("$$", "$")
    recorder = tmp_path / "bin" / "finsentry"
    recorder.parent.mkdir()
    recorder.write_text('#!/bin/sh\necho "finsentry $*" >> "$CALLS"\n')
    recorder.chmod(0o755)
    seed, volume = tmp_path / "seed", tmp_path / "training" / "tfn"
    seed.mkdir()
    (seed / "tfns_sentiment_train.csv").write_text("text,label\nseed,1\n")
    (seed / "tfnt_topic_train.csv").write_text("text,label\nseed,2\n")
    env = {
        "PATH": f"{recorder.parent}:{os.environ['PATH']}",
        "CALLS": str(tmp_path / "calls"),
        "TRAINING_SEED_DIR": str(seed),
        "FINSENTRY_TRAIN_DATA_DIR": str(volume),
    }

    def run():
        result = subprocess.run(
            ["sh", "-c", script, "finsentry", *svc["command"]], env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr

    run()  # an empty volume gets the seed
    assert sorted(p.name for p in volume.iterdir()) == ["tfns_sentiment_train.csv", "tfnt_topic_train.csv"]
    (volume / "tfnt_topic_train.csv").write_text("text,label\nedited by the operator,3\n")
    run()  # a second start keeps the operator's file
    assert "edited" in (volume / "tfnt_topic_train.csv").read_text()
    assert (tmp_path / "calls").read_text().splitlines() == ["finsentry trainer"] * 2
    # The image carries the seed there, and the build context lets it in.
    dockerfile = (ROOT / "Dockerfile").read_text()
    seed_dir = re.search(r"TRAINING_SEED_DIR=(\S+)", dockerfile).group(1)
    assert re.search(rf"^COPY data/tfn/ {re.escape(seed_dir)}/?$", dockerfile, flags=re.MULTILINE)
    assert "!data/tfn" in (ROOT / ".dockerignore").read_text().split()
    assert svc["environment"]["FINSENTRY_TRAIN_DATA_DIR"].startswith("/var/lib/finsentry/training")


def test_grafana_reads_elasticsearch_as_a_read_only_user(resolved):
    grafana = resolved["services"]["grafana"]["environment"]
    worker = resolved["services"]["worker"]["environment"]
    assert grafana["FINSENTRY_ES_USERNAME"] != worker["FINSENTRY_ES_USERNAME"]
    assert grafana["FINSENTRY_ES_PASSWORD"] == PASSWORDS["GRAFANA_ES_PASSWORD"]
    es_user = resolved["services"]["es-user"]["environment"]
    assert es_user["GRAFANA_ES_USERNAME"] == grafana["FINSENTRY_ES_USERNAME"]  # the job creates that user


def supported_grafana_floor(es_major: int) -> tuple[int, int]:
    """The least Grafana release docs/deployment.md supports with an Elasticsearch major."""
    text = (ROOT / "docs/deployment.md").read_text()
    rows = re.findall(r"^\| Elasticsearch (\d+)\.x \| Grafana (\d+)\.(\d+) or later \|", text, flags=re.MULTILINE)
    table = {int(es): (int(major), int(minor)) for es, major, minor in rows}
    assert es_major in table, f"docs/deployment.md names no Grafana release for Elasticsearch {es_major}"
    return table[es_major]


def image_version(image: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.search(r":v?(\d+(?:\.\d+)*)", image).group(1).split("."))


def test_grafana_release_supports_the_shipped_elasticsearch(resolved):
    es = image_version(resolved["services"]["elasticsearch"]["image"])
    grafana = image_version(resolved["services"]["grafana"]["image"])
    assert grafana[:2] >= supported_grafana_floor(es[0]), (
        f"Grafana {grafana} does not support Elasticsearch {es} (docs/deployment.md)"
    )


def test_the_supported_elasticsearch_servers_match_the_client_range():
    """docs name the servers; the client's major must be one every supported server accepts
    (`compatible-with=<client major>`): Elasticsearch N accepts N and N-1."""
    import tomllib
    from packaging.requirements import Requirement

    text = (ROOT / "docs/deployment.md").read_text()
    servers = [int(m) for m in re.findall(r"^\| Elasticsearch (\d+)\.x \|", text, flags=re.MULTILINE)]
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    client = next(Requirement(d) for d in deps if d.startswith("elasticsearch"))
    for major in (7, 8, 9, 10):
        admitted = any(client.specifier.contains(f"{major}.{minor}") for minor in range(0, 30))
        accepted_by_all = all(server - 1 <= major <= server for server in servers)
        assert not admitted or accepted_by_all, (
            f"the client range {client.specifier} admits {major}.x, which a supported server ({servers}) refuses"
        )


def test_kafka_has_no_built_in_cluster_id_and_a_cheap_health_check(resolved):
    kafka = resolved["services"]["kafka"]
    assert kafka["environment"]["CLUSTER_ID"] == PASSWORDS["KAFKA_CLUSTER_ID"]  # from .env, no default
    assert re.search(r"KAFKA_CLUSTER_ID:\?", COMPOSE.read_text())
    check = " ".join(kafka["healthcheck"]["test"])
    assert ".sh" not in check and "java" not in check, "a JVM tool every 15 s is not a health check"


def test_lag_is_measured_outside_the_workers(resolved):
    """A process that is not a worker reports consumer lag, and Prometheus scrapes it."""
    exporter = resolved["services"]["kafka-exporter"]
    assert exporter.get("image") not in FINSENTRY_IMAGES
    assert "--kafka.server=kafka:9092" in exporter["command"]
    config = yaml.safe_load((ROOT / "dashboards/prometheus/prometheus.yml").read_text())
    targets = [t for job in config["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]]
    assert "kafka-exporter:9308" in targets
