"""Prometheus metrics, one registry per app (so tests and several apps never collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # `labels()` validates and locks on every call; the hot paths keep their children.
        self._served: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._skill_replies: dict[str, Counter] = {}
        self.requests = Counter(
            "dangol_http_requests",
            "HTTP requests handled",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "dangol_http_request_seconds",
            "HTTP request latency",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )
        self.skill_replies = Counter(
            "dangol_kakao_skill_replies",
            "Kakao skill answers by kind",
            ["kind"],
            registry=self.registry,
        )
        self.outbox = Gauge(
            "dangol_outbox_items", "Outbox rows by status", ["status"], registry=self.registry
        )
        self.dead_letters = Gauge(
            "dangol_outbox_dead_letters",
            "Outbox rows that gave up (need a person)",
            registry=self.registry,
        )
        self.writer_queue = Gauge(
            "dangol_db_writer_queue",
            "Units waiting for the database writer",
            registry=self.registry,
        )

        self.commit_failures = Counter(
            "dangol_db_commit_failures",
            "Transactions the database failed to commit (disk full, I/O error, connection "
            "lost, a lock held past the busy timeout); a unit's own error, such as a "
            "constraint it violates, is not counted",
            registry=self.registry,
        )

    def served(self, route: str, method: str, status: int, seconds: float) -> None:
        """One HTTP request handled: counted, and its latency observed."""
        children = self._served.get((route, method, status))
        if children is None:
            count = self.requests.labels(route, method, str(status))
            children = (count, self.latency.labels(route))
            self._served[route, method, status] = children
        count, latency = children
        count.inc()
        latency.observe(seconds)

    def skill_reply(self, kind: str) -> None:
        """One Kakao skill answer of this kind."""
        child = self._skill_replies.get(kind)
        if child is None:
            child = self._skill_replies[kind] = self.skill_replies.labels(kind)
        child.inc()

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
