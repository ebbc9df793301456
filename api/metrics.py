"""Prometheus metrics, computed at scrape time from the store and the chain, so they are true across the
API, relayer and indexer processes alike."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from api.chain_view import ChainView, indexer_health
from node_bridge import outbox
from node_bridge.models import ChainEvent, OutboxStatus, RelayTransaction


class CredtraceCollector(Collector):
    def __init__(self, engine: Engine, chain: ChainView) -> None:
        self.engine = engine
        self.chain = chain

    def collect(self) -> Iterator[Metric]:
        health = self.chain.health()
        yield GaugeMetricFamily("credtrace_chain_reachable", "1 if the chain node answers", value=int(health.reachable))
        if health.head_block is not None:
            yield GaugeMetricFamily(
                "credtrace_chain_head_block", "Head block of the chain node", value=health.head_block
            )
        with Session(self.engine) as session:
            counts = outbox.counts(session)
            tx_counts = dict(
                session.exec(select(RelayTransaction.status, func.count()).group_by(RelayTransaction.status)).all()
            )
            sends = session.exec(select(func.coalesce(func.sum(RelayTransaction.sends), 0))).one()
            events = session.exec(select(func.count()).select_from(ChainEvent)).one()
        entries = GaugeMetricFamily("credtrace_outbox_entries", "Outbox entries by status", labels=["status"])
        for state in OutboxStatus:
            entries.add_metric([state.value], counts.get(state.value, 0))
        yield entries
        depth = counts.get(OutboxStatus.ACCEPTED, 0) + counts.get(OutboxStatus.SUBMITTED, 0)
        yield GaugeMetricFamily(
            "credtrace_outbox_depth", "Writes accepted but not yet confirmed or failed", value=depth
        )
        confirmed = CounterMetricFamily("credtrace_relayer_records", "Records relayed, by outcome", labels=["outcome"])
        confirmed.add_metric(["confirmed"], counts.get(OutboxStatus.CONFIRMED, 0))
        confirmed.add_metric(["failed"], counts.get(OutboxStatus.FAILED, 0))
        yield confirmed
        txs = GaugeMetricFamily("credtrace_relayer_transactions", "Relayer transactions by status", labels=["status"])
        for tx_status, count in sorted(tx_counts.items()):
            txs.add_metric([str(tx_status)], count)
        yield txs
        yield CounterMetricFamily("credtrace_relayer_sends", "Raw transactions sent, re-sends included", value=sends)
        yield CounterMetricFamily("credtrace_indexer_events", "Contract events in the index", value=events)
        lag = indexer_health(self.engine, health)
        if lag.checkpoint_block is not None:
            yield GaugeMetricFamily(
                "credtrace_indexer_checkpoint_block", "Last indexed block", value=lag.checkpoint_block
            )
        if lag.lag_blocks is not None:
            yield GaugeMetricFamily(
                "credtrace_indexer_lag_blocks", "Head minus last indexed block", value=lag.lag_blocks
            )
        if lag.lag_seconds is not None:
            yield GaugeMetricFamily(
                "credtrace_indexer_lag_seconds", "Block time behind the head", value=lag.lag_seconds
            )
