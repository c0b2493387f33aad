"""`finsentry settings` prints what loads back as the same settings, and flags are checked
by the settings' own types before a command starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from finsentry.settings import Settings, SettingsOverrideError, settings_with

FINSENTRY = [sys.executable, "-m", "finsentry.cli"]

# Values that trip a naive printer: spaces, a cron line, quotes, a ';' list, a Path.
ENVIRONMENT = {
    "FINSENTRY_APPRISE_URLS": "json://a.example/hook mailto://risk@example.com",
    "FINSENTRY_TRAIN_SCHEDULE": "15 2 * * 1-5",
    "FINSENTRY_ALERT_SCOPE_OVERRIDES": "topic:Earnings=z=5,min=30;entity:SPY=off",
    "FINSENTRY_USER_AGENT": 'risk-bot "beta" (it\'s us) #1 $HOME',
    "FINSENTRY_KAFKA_PASSWORD": "s3cr#t 'x' \"y\"",
    "FINSENTRY_KAFKA_USERNAME": "svc-risk",
    "FINSENTRY_OUTBOX_PATH": "/data/out box.db",
    "FINSENTRY_BROKER": "k1:9092,k2:9093",
    "FINSENTRY_ALERT_Z_THRESHOLD": "4.5",
    "FINSENTRY_LOG_JSON": "true",
}


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINSENTRY_")}
    return {**env, **extra}


def run_settings(tmp_path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    out = subprocess.run(
        FINSENTRY + ["settings", *args], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env
    )
    assert out.returncode == 0, out.stderr
    return out


def loaded(tmp_path, dotenv: str) -> Settings:
    path = tmp_path / "loaded.env"
    path.write_text(dotenv)
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("FINSENTRY_")}
    try:
        return Settings(_env_file=path)
    finally:
        os.environ.update(saved)


def plain(settings: Settings) -> dict:
    return {k: v.get_secret_value() if hasattr(v, "get_secret_value") else v for k, v in settings.model_dump().items()}


def expected(env: dict[str, str]) -> Settings:
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("FINSENTRY_")}
    try:
        os.environ.update(env)
        return Settings(_env_file=None)
    finally:
        for k in env:
            os.environ.pop(k, None)
        os.environ.update(saved)


def test_settings_output_loads_back_as_the_same_settings(tmp_path):
    out = run_settings(tmp_path, "--show-secrets", env=clean_env(**ENVIRONMENT))
    assert "None" not in out.stdout and "*****" not in out.stdout
    assert "FINSENTRY_MODEL_PATH=\n" in out.stdout and "FINSENTRY_ALERTMANAGER_URL=\n" in out.stdout
    again = loaded(tmp_path, out.stdout)
    assert plain(again) == plain(expected(ENVIRONMENT))
    assert again.model_path is None and again.alertmanager_url is None and again.es_password is None


def test_a_set_secret_is_named_in_a_comment_not_printed(tmp_path):
    out = run_settings(tmp_path, env=clean_env(**ENVIRONMENT))
    assert "s3cr#t" not in out.stdout
    assert "# FINSENTRY_KAFKA_PASSWORD is set but not shown" in out.stdout
    again = loaded(tmp_path, out.stdout)
    want = plain(expected(ENVIRONMENT))
    want["kafka_password"] = None  # left out: everything else is the same
    assert plain(again) == want


def test_changed_prints_only_what_differs_from_the_defaults_and_json_is_typed(tmp_path):
    env = clean_env(
        FINSENTRY_ALERT_Z_THRESHOLD="4.5",
        FINSENTRY_LOG_JSON="true",
        FINSENTRY_BACKEND="torch",
        FINSENTRY_TOPIC_PREFIX="finsentry.",
    )  # set, but to its default
    out = run_settings(tmp_path, "--changed", env=env)
    assert out.stdout.splitlines() == [
        "FINSENTRY_BACKEND=torch",
        "FINSENTRY_ALERT_Z_THRESHOLD=4.5",
        "FINSENTRY_LOG_JSON=True",
    ]
    out = run_settings(tmp_path, "--changed", "--json", env=env)
    assert json.loads(out.stdout) == {
        "FINSENTRY_BACKEND": "torch",
        "FINSENTRY_ALERT_Z_THRESHOLD": 4.5,
        "FINSENTRY_LOG_JSON": True,
    }
    everything = json.loads(run_settings(tmp_path, "--json", env=clean_env()).stdout)
    assert everything["FINSENTRY_MODEL_PATH"] is None and len(everything) == len(Settings.model_fields)


def test_an_empty_value_means_unset_for_optional_settings(monkeypatch):
    monkeypatch.setenv("FINSENTRY_MODEL_PATH", "")
    monkeypatch.setenv("FINSENTRY_ALERTMANAGER_URL", "")
    s = Settings(_env_file=None)
    assert s.model_path is None and s.alertmanager_url is None


@pytest.mark.parametrize("given", ["127.0.0.1:9092", "kafka://127.0.0.1:9092", " kafka://127.0.0.1:9092 "])
def test_broker_takes_host_port_and_kafka_urls(given):
    s = Settings(_env_file=None, broker=given)
    assert s.broker == "kafka://127.0.0.1:9092" and s.broker_address == "127.0.0.1:9092"


def test_broker_lists_in_either_form():
    for given in ("k1:9092;k2:9093", "kafka://k1:9092,k2:9093", "k1:9092, k2:9093"):
        s = Settings(_env_file=None, broker=given)
        assert s.broker == "kafka://k1:9092;k2:9093" and s.broker_address == "k1:9092,k2:9093"
    with pytest.raises(ValueError, match="host:port"):
        Settings(_env_file=None, broker="kafka://nohost")


def test_overrides_are_validated_like_the_environment():
    base = Settings(_env_file=None)
    assert settings_with(base, backend="torch", web_port=None).backend == "torch"
    assert settings_with(base, web_port="7000").web_port == 7000  # coerced as from the environment
    with pytest.raises(SettingsOverrideError) as err:
        settings_with(base, backend="bogus")
    assert err.value.field == "backend" and "'cuda'" in err.value.message
    with pytest.raises(SettingsOverrideError, match="inference_threads"):
        settings_with(base, inference_threads=-1)


def test_a_bad_flag_fails_at_once_naming_the_flag_and_the_choices(tmp_path):
    # Nothing listens on the broker port: the flag must be refused before any connection.
    out = subprocess.run(
        FINSENTRY + ["worker", "--backend", "bogus", "--broker", "kafka://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=clean_env(),
    )
    assert out.returncode == 2
    assert "--backend" in out.stderr and "'torch-bf16'" in out.stderr and "'cuda'" in out.stderr
    assert "Traceback" not in out.stderr
    for command in (
        ["ingest", "-", "--broker", "no-port"],
        ["worker", "--broker", "no-port"],
        ["alerts", "replay", "--input", "-", "--z", "high"],
    ):
        out = subprocess.run(
            FINSENTRY + command, capture_output=True, text=True, timeout=120, cwd=tmp_path, env=clean_env(), input=""
        )
        assert out.returncode == 2, (command, out.stderr)
        assert f"'{command[-2]}'" in out.stderr and "Traceback" not in out.stderr, out.stderr
