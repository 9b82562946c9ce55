"""Prometheus metrics of one server (its own registry, so two apps in one process do not mix counts).

Per route and model: requests by status code, errors (status >= 400) and request latency; per model: the
size and duration of each micro-batch. Label values come from a fixed set (the routes, the loaded models'
names, "-" when no model was resolved), never from what a client sent.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

disable_created_metrics()  # no `_created` twin of every series: the server process is ours

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
NO_MODEL = "-"


class Telemetry:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("modlab_requests", "HTTP requests by route, model and status code",
                                ["route", "model", "code"], registry=self.registry)
        self.errors = Counter("modlab_request_errors", "HTTP requests answered with status >= 400",
                              ["route", "model", "code"], registry=self.registry)
        self.latency = Histogram("modlab_request_latency_seconds", "request latency (receipt to response)",
                                 ["route", "model"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("modlab_batch_size", "texts per micro-batch", ["model"],
                                    buckets=BATCH_BUCKETS, registry=self.registry)
        self.batch_seconds = Histogram("modlab_batch_seconds", "model time per micro-batch", ["model"],
                                       buckets=LATENCY_BUCKETS, registry=self.registry)

    def request(self, route: str, models: list[str], code: int, seconds: float) -> None:
        for model in models or [NO_MODEL]:
            self.requests.labels(route, model, str(code)).inc()
            if code >= 400:
                self.errors.labels(route, model, str(code)).inc()
            self.latency.labels(route, model).observe(seconds)

    def batch(self, model: str, size: int, seconds: float) -> None:
        self.batch_size.labels(model).observe(size)
        self.batch_seconds.labels(model).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
