"""The Kafka transport of the workers: Faust's aiokafka driver with a short fetch wait.

Faust fixes the consumer's fetch_max_wait_ms at 1500. A broker may hold a fetch for that
long when no record was there at its start (the embedded tansu broker does), so on a
quiet pipeline each hop (raw → valid → scored → store) could add up to 1.5 s of latency.
The wait comes from FINSENTRY_CONSUMER_FETCH_MAX_WAIT_MS instead; against Apache Kafka,
which answers as soon as a record arrives, a short wait only adds cheap idle fetches.
Registered as the `finsentry-kafka://` scheme and used for the consumer side only.
"""

from __future__ import annotations

from faust.transport import drivers
from faust.transport.drivers import aiokafka as driver

SCHEME = "finsentry-kafka"


class ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport):
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads this when it builds its fetcher in start(); set before start.
        consumer._fetch_max_wait_ms = int(getattr(self.app.conf, "finsentry_fetch_max_wait_ms", 1500))
        return consumer


class Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(driver.Transport):
    Consumer = Consumer


drivers.TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
