"""How every Kafka client of finsentry connects: addresses, TLS and SASL, written once.

Four libraries talk to Kafka here (Faust's aiokafka driver, a plain aiokafka consumer,
kafka-python producers and consumers); each wants the same facts in its own keywords. The
facts come from `KafkaAuth`; the functions below only spell them for one library, so a
setting reaches every client alike.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

from finsentry.settings import Settings

# Retries are bounded by delivery_timeout_ms, not by a count; set explicitly because the
# library's default differs between versions (0 before 2.2, infinite since).
DELIVERY_RETRIES = 2**31 - 1


@dataclass(frozen=True)
class KafkaAuth:
    """The security settings of every Kafka connection."""

    protocol: str
    ca_file: str | None = None
    sasl_mechanism: str | None = None
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaAuth:
        password = settings.kafka_password.get_secret_value() if settings.kafka_password else None
        return cls(
            protocol=settings.kafka_security_protocol,
            ca_file=str(settings.kafka_ca_file) if settings.kafka_ca_file else None,
            sasl_mechanism=settings.kafka_sasl_mechanism,
            username=settings.kafka_username,
            password=password,
        )

    @property
    def tls(self) -> bool:
        return self.protocol.endswith("SSL")

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL")

    def ssl_context(self) -> ssl.SSLContext | None:
        """A verifying context trusting `ca_file` (the system CAs without one); None without TLS."""
        return ssl.create_default_context(cafile=self.ca_file) if self.tls else None

    def sasl_keywords(self) -> dict[str, Any]:
        """The SASL keywords kafka-python and aiokafka share (none without SASL)."""
        if not self.sasl:
            return {}
        return {
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password,
        }


def bootstrap_servers(settings: Settings) -> list[str]:
    return settings.broker_address.split(",")


def kafka_python_connection(settings: Settings) -> dict[str, Any]:
    """kafka-python keyword arguments to reach the brokers: bootstrap, TLS, SASL."""
    auth = KafkaAuth.from_settings(settings)
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers(settings),
        "security_protocol": auth.protocol,
        **auth.sasl_keywords(),
    }
    if auth.tls and auth.ca_file:
        config["ssl_cafile"] = auth.ca_file  # kafka-python builds its verifying context from it
    return config


def aiokafka_security(settings: Settings) -> dict[str, Any]:
    """aiokafka keyword arguments for TLS and SASL (nothing for PLAINTEXT)."""
    auth = KafkaAuth.from_settings(settings)
    if not auth.tls and not auth.sasl:
        return {}
    config: dict[str, Any] = {"security_protocol": auth.protocol, **auth.sasl_keywords()}
    if auth.tls:
        config["ssl_context"] = auth.ssl_context()
    return config


def producer_config(settings: Settings) -> dict[str, Any]:
    """kafka-python KafkaProducer keyword arguments: what every publisher of finsentry sends with.

    Every record is acknowledged by all in-sync replicas and retried until the delivery
    timeout. Against the embedded tansu broker there is no idempotence (tansu has no
    InitProducerId), so one request in flight keeps retried records in order.
    """
    delivery_ms = int(settings.producer_delivery_timeout_s * 1000)
    config: dict[str, Any] = {
        **kafka_python_connection(settings),
        "client_id": f"{settings.app_id}-ingest",
        "acks": "all",
        "compression_type": None if settings.producer_compression == "none" else settings.producer_compression,
        "delivery_timeout_ms": delivery_ms,
        "retries": DELIVERY_RETRIES,
        # kafka-python insists delivery timeout >= request timeout + linger.
        "request_timeout_ms": min(30_000, delivery_ms // 2),
        "linger_ms": settings.producer_linger_ms,
    }
    if settings.broker_embedded:
        config.update(enable_idempotence=False, max_in_flight_requests_per_connection=1)
    else:
        config.update(enable_idempotence=True)
    return config
