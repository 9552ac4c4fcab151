"""The engine's Prometheus metrics, each labelled with this process's ``pod``.

Latencies are observed per record, from event time, by the batch that wrote the record: the
batch computes its records' bucket counts in one Spark aggregate and hands them over as a
:class:`LatencyCounts`, which :class:`BulkHistogram` adds to a Prometheus histogram (the client
library's own ``Histogram`` can only observe one value per call).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

from workbench.metrics.prometheus import new_registry, pod_name

#: Upper bounds (seconds) of the latency histograms: sub-second to an hour.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0,
    600.0, 1800.0, 3600.0,
)  # fmt: skip

LATENCIES = {
    "pipeline_sensor_to_enrichment_latency_seconds": "Event time to silver commit, per record.",
    "pipeline_sensor_to_gold_latency_seconds": "Event time to gold commit, per record.",
    "pipeline_enrichment_to_gold_latency_seconds": "Silver enrichment to gold commit, per record.",
}
STAGES = ("ingest", "enrichment", "gold")
"""``pipeline_stage_latency_seconds`` stages: event → bronze receive, receive → silver commit,
silver enrichment → gold commit."""


@dataclass(frozen=True)
class LatencyCounts:
    """Per-record latencies of one batch: cumulative counts per bucket bound, and their sum."""

    cumulative: tuple[int, ...]
    """Records with latency ≤ each of :data:`LATENCY_BUCKETS` (same order)."""
    count: int
    total: float


@dataclass(frozen=True)
class Historical:
    """Readings of one batch older than the live horizon when committed."""

    count: int
    oldest_age: float
    """The largest commit time − event time among them (0 without any)."""


class BulkHistogram(Collector):
    """A histogram fed with whole batches of per-record observations."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = tuple(labels)
        self._series: dict[tuple[str, ...], list[float]] = {}
        self._lock = threading.Lock()

    def add(self, label_values: Sequence[str], counts: LatencyCounts) -> None:
        """Add one batch's counts to the series ``label_values``."""
        key = tuple(label_values)
        with self._lock:
            series = self._series.setdefault(key, [0.0] * (len(LATENCY_BUCKETS) + 2))
            for i, c in enumerate(counts.cumulative):
                series[i] += c
            series[-2] += counts.count
            series[-1] += counts.total

    def zero(self, label_values: Sequence[str]) -> None:
        """Create the series with zero counts so it is exported before the first batch."""
        self.add(label_values, LatencyCounts((0,) * len(LATENCY_BUCKETS), 0, 0.0))

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        with self._lock:
            for key, series in self._series.items():
                buckets = [(_bound(b), series[i]) for i, b in enumerate(LATENCY_BUCKETS)]
                buckets.append(("+Inf", series[-2]))
                family.add_metric(list(key), buckets, series[-1])
        yield family

    def describe(self) -> Iterable[HistogramMetricFamily]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labels)]


def _bound(value: float) -> str:
    return repr(float(value))


class EngineMetrics:
    """Every engine metric, created with zero series so each is present from the start."""

    def __init__(self, pod: str | None = None) -> None:
        self.pod = pod or pod_name()
        self.registry = new_registry()
        r = self.registry
        p = self.pod
        self.active_streams = Gauge(
            "spark_active_streams", "Streaming queries running now.", ["pod"], registry=r
        )
        self.stream_status = Gauge(
            "spark_stream_status", "1 if the query is active, else 0.", ["pod", "query"], registry=r
        )
        self.batches = Counter(
            "spark_batches_processed_total",
            "Micro-batches finished, by outcome.",
            ["pod", "status"],
            registry=r,
        )
        self.batch_latency = Histogram(
            "spark_batch_processing_latency_seconds",
            "Wall time of one micro-batch.",
            ["pod", "query"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.enrichment_records = Counter(
            "enrichment_records_processed_total",
            "Bronze records written to silver (after value rules).",
            ["pod"],
            registry=r,
        )
        self.gold_records = Counter(
            "gold_records_written_total",
            "Rows inserted or updated in gold tables.",
            ["pod", "table"],
            registry=r,
        )
        self.rule_applied = Counter(
            "normalization_rule_applied_total",
            "Rows whose canonical value a normalization rule supplied.",
            ["pod", "rule_id"],
            registry=r,
        )
        self.value_rule_rows = Counter(
            "value_rule_rows_total",
            "Rows a value rule affected (dropped, converted, flagged or defaulted).",
            ["pod", "rule_id"],
            registry=r,
        )
        self.value_rule_failures = Counter(
            "value_rule_failures_total",
            "Batches in which a value rule was skipped because it cannot run.",
            ["pod", "rule_id"],
            registry=r,
        )
        self.held_records = Counter(
            "enrichment_records_held_total",
            "Records of unregistered or disabled devices held back from silver.",
            ["pod"],
            registry=r,
        )
        self.computations = Counter(
            "computation_executions_total",
            "Computation runs reported by kernels and dashboards, by outcome.",
            ["pod", "computation", "status"],
            registry=r,
        )
        self.computation_latency = Histogram(
            "computation_execution_latency_seconds",
            "Wall time of computation runs as their client saw it.",
            ["pod", "computation"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.latest_offset = Gauge(
            "spark_source_latest_offset_seconds",
            "Time the query's last trigger took to find its new input (Spark's latestOffset: "
            "for the bronze file source, a listing of all of bronze).",
            ["pod", "query"],
            registry=r,
        )
        self.watermark = Gauge(
            "spark_query_watermark_seconds",
            "The watermark (epoch s) the query's last batch ran with. Gold and "
            "computations: the newest event time seen before it, minus engine.watermark "
            "(windows ending before it are complete). Enrichment: the de-duplication's "
            "horizon (now minus engine.dedupe_minutes).",
            ["pod", "query"],
            registry=r,
        )
        self.late_records = Counter(
            "gold_late_records_total",
            "Readings that reached gold with an event time behind its watermark (a stateful "
            "Spark query would drop them). They are merged into their windows all the same.",
            ["pod"],
            registry=r,
        )
        self.step_duration = Gauge(
            "step_duration_seconds",
            "Wall time of each batch-processor step in the last batch.",
            ["pod", "module", "step"],
            registry=r,
        )
        self.processing_lag = Gauge(
            "pipeline_processing_lag_seconds",
            "Receive time of the oldest record in the last silver batch to its commit.",
            ["pod"],
            registry=r,
        )
        self.data_age = Gauge(
            "pipeline_layer_data_age_seconds",
            "Now minus the newest event time written to the layer.",
            ["pod", "layer"],
            registry=r,
        )
        self.historical_records = Counter(
            "pipeline_historical_records_total",
            "Readings whose event time was older than engine.live_horizon_seconds when they "
            "reached the layer (backfills, replays): left out of the latency histograms.",
            ["pod", "layer"],
            registry=r,
        )
        self.historical_age = Gauge(
            "pipeline_historical_age_seconds",
            "Commit time minus event time of the oldest historical reading in the layer's "
            "last batch (0: the batch held only live readings).",
            ["pod", "layer"],
            registry=r,
        )
        self.component_failures = Counter(
            "workbench_component_failures_total",
            "Components (a stream, a maintenance step) stopped by a terminal error, by the "
            "error's code; they stay stopped until an operator acts.",
            ["pod", "component", "code"],
            registry=r,
        )
        self.alerts_firing_now = Gauge(
            "workbench_alerts_firing",
            "Sensors an enabled alert rule fires for now (the catalog's alert states).",
            ["pod", "rule_id"],
            registry=r,
        )
        self.alert_transitions = Counter(
            "workbench_alert_transitions_total",
            "Alerts that started firing or resolved, by rule.",
            ["pod", "rule_id", "status"],
            registry=r,
        )
        self._alert_rules: set[str] = set()
        self._newest: dict[str, float] = {}
        for layer in ("bronze", "silver", "gold"):
            self.data_age.labels(p, layer).set_function(partial(self._age, layer))
        for layer in ("silver", "gold"):
            self.historical_records.labels(p, layer)
            self.historical_age.labels(p, layer).set(0)
        self.latency = {name: BulkHistogram(name, doc, ["pod"]) for name, doc in LATENCIES.items()}
        self.stage_latency = BulkHistogram(
            "pipeline_stage_latency_seconds", "Per-record latency of each stage.", ["pod", "stage"]
        )
        for hist in self.latency.values():
            hist.zero([p])
            r.register(hist)
        for stage in STAGES:
            self.stage_latency.zero([p, stage])
        r.register(self.stage_latency)
        for status in ("success", "failed"):
            self.batches.labels(p, status)
        self.enrichment_records.labels(p)
        self.held_records.labels(p)
        self.late_records.labels(p)
        self.processing_lag.labels(p)

    def _age(self, layer: str) -> float:
        newest = self._newest.get(layer)
        return 0.0 if newest is None else max(0.0, time.time() - newest)

    def newest_event(self, layer: str, epoch_seconds: float | None) -> None:
        """Note the newest event time (epoch s) written to ``layer``."""
        if epoch_seconds is not None:
            self._newest[layer] = max(epoch_seconds, self._newest.get(layer, epoch_seconds))

    def record_rule_usage(self, usage: dict[int, int]) -> None:
        """Count one batch's per-rule normalization usage."""
        for rule_id, rows in usage.items():
            if rows:
                self.rule_applied.labels(self.pod, str(rule_id)).inc(rows)

    def computation_executed(self, name: str, seconds: float, status: str) -> None:
        """Count one reported computation run."""
        self.computations.labels(self.pod, name, status).inc()
        self.computation_latency.labels(self.pod, name).observe(seconds)

    def alerts_firing(self, per_rule: dict[str, int]) -> None:
        """Set how many sensors each alert rule fires for; rules gone are dropped."""
        for gone in self._alert_rules - per_rule.keys():
            self.alerts_firing_now.remove(self.pod, gone)
        for rule_id, firing in per_rule.items():
            self.alerts_firing_now.labels(self.pod, rule_id).set(firing)
        self._alert_rules = set(per_rule)

    def alert_changed(self, rule_id: str, status: str) -> None:
        """Count an alert of ``rule_id`` that started firing or resolved."""
        self.alert_transitions.labels(self.pod, rule_id, status).inc()

    def batch_finished(self, query: str, seconds: float | None) -> None:
        """Count one finished micro-batch of ``query`` and its wall time."""
        self.batches.labels(self.pod, "success").inc()
        if seconds is not None:
            self.batch_latency.labels(self.pod, query).observe(seconds)

    def input_found(self, query: str, seconds: float) -> None:
        """Record how long ``query``'s last trigger took to find its new input."""
        self.latest_offset.labels(self.pod, query).set(seconds)

    def watermark_moved(self, query: str, epoch_seconds: float) -> None:
        """Record the watermark (epoch s) ``query``'s last batch ran with."""
        self.watermark.labels(self.pod, query).set(epoch_seconds)

    def batch_failed(self) -> None:
        """Count a micro-batch that stopped its query (it failed after its retries)."""
        self.batches.labels(self.pod, "failed").inc()

    def component_failed(self, component: str, code: str) -> None:
        """Count a component stopped for good by a terminal error of ``code``."""
        self.component_failures.labels(self.pod, component, code).inc()

    def step(self, module: str, step: str, seconds: float) -> None:
        """Record one profiled step of the batch processor."""
        self.step_duration.labels(self.pod, module, step).set(seconds)

    def observe_latency(self, name: str, counts: LatencyCounts) -> None:
        """Add a batch's per-record latencies to one of :data:`LATENCIES`."""
        self.latency[name].add([self.pod], counts)

    def observe_historical(self, layer: str, historical: Historical) -> None:
        """Count a batch's historical readings in ``layer`` and the oldest one's age."""
        self.historical_records.labels(self.pod, layer).inc(historical.count)
        self.historical_age.labels(self.pod, layer).set(historical.oldest_age)

    def observe_stage(self, stage: str, counts: LatencyCounts) -> None:
        """Add a batch's per-record latencies of one of :data:`STAGES`."""
        self.stage_latency.add([self.pod, stage], counts)
