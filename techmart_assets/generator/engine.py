"""Day-by-day orchestration: draws each day's orders and clickstream, injects anomalies, writes the drops
and change extracts, and tallies the summary. Only one day is held in memory at a time.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from tqdm import tqdm

from techmart_assets.generator import anomalies, seasonality, transactions, web_events
from techmart_assets.generator.catalogue import Catalogue
from techmart_assets.generator.config import GeneratorConfig
from techmart_assets.generator.customers import Customers
from techmart_assets.generator.draws import day_rng, setup_rng
from techmart_assets.generator.summary import GenerationSummary
from techmart_assets.generator.writer import SUMMARY_FILE, DropWriter

_CUSTOMERS_STREAM, _CATALOGUE_STREAM, _CALENDAR_STREAM = 1, 2, 3


def generate(
    config: GeneratorConfig, out: str | os.PathLike[str], *, progress: bool = False
) -> GenerationSummary:
    """Write the raw drops described by `config` under `out` (cleared first) and return what was written."""
    out = Path(out)
    days = [config.start + timedelta(days=i) for i in range(config.days)]
    weights = np.array([seasonality.day_weight(day, config.start) for day in days])
    calendar = setup_rng(config.seed, _CALENDAR_STREAM)
    orders_per_day = calendar.multinomial(config.transactions, weights / weights.sum()).tolist()
    with DropWriter(out) as writer:
        run = _Run(config, writer)
        for day, count in tqdm(
            list(zip(days, orders_per_day, strict=True)),
            disable=not progress,
            unit="day",
            file=sys.stderr,
            desc="generate",
        ):
            run.day(day, count)
        summary = run.summary()
    (out / SUMMARY_FILE).write_text(json.dumps(summary.to_dict(), indent=2) + "\n", encoding="utf-8")
    return summary


class _Run:
    """What one day hands to the next (populations, ids, resendable rows) and the running figures."""

    def __init__(self, config: GeneratorConfig, writer: DropWriter):
        self.config = config
        self.writer = writer
        self.customers = Customers(config, setup_rng(config.seed, _CUSTOMERS_STREAM))
        self.catalogue = Catalogue(config, setup_rng(config.seed, _CATALOGUE_STREAM))
        self.pages = web_events.Pages(config.products)
        self.pool = anomalies.ResendPool()
        self.next_order, self.next_event, self.next_session = 1, 1, 1
        self.revenue, self.clean_rows = 0, 0
        self.fraud_scenarios = dict.fromkeys(anomalies.FRAUD_KINDS, 0)
        self.fraud_rows = dict.fromkeys(anomalies.FRAUD_KINDS, 0)
        self.dirty = {
            "transactions": dict.fromkeys(anomalies.TRANSACTION_DIRTY_KINDS, 0),
            "web_events": dict.fromkeys(anomalies.WEB_DIRTY_KINDS, 0),
        }

    def day(self, day: date, count: int) -> None:
        rng = day_rng(self.config.seed, day)
        changed_products = self.catalogue.open_day(rng, day)
        eligible = self.customers.registered_by(day)
        demand = self.catalogue.demand(day)
        orders, fraud, mutated, labels = self._orders(rng, day, count, eligible, demand)
        honest = ~fraud & ~mutated
        if round(self.config.sessions_per_transaction * count):
            labels += self._events(rng, day, orders, eligible, demand)

        upgraded = self.customers.record_purchases(orders.customer[honest], orders.total_amount[honest])
        moved = self.customers.move(rng, eligible)
        joined = np.arange(eligible) if day == self.config.start else self.customers.registered_on(day)
        changed_customers = np.unique(np.concatenate([joined, moved, upgraded]))
        self.writer.write("customers", day, self.customers.extract(changed_customers, day))
        restocked = self.catalogue.close_day(rng, orders.product, orders.quantity)
        changed_products = np.union1d(changed_products, restocked)
        self.writer.write("products", day, self.catalogue.extract(changed_products, day))

        self.pool.add(rng, day, orders, np.flatnonzero(honest), 16 + int(4 * self.config.dirty_rate * count))
        self.writer.add_labels(labels)
        for label in labels:
            if label.category == "dirty":
                self.dirty[label.source][label.kind] += 1

    def _orders(
        self, rng: np.random.Generator, day: date, count: int, eligible: int, demand: np.ndarray
    ) -> tuple[transactions.TxFrame, np.ndarray, np.ndarray, list[anomalies.Label]]:
        """Draw, number and write the day's orders: the orders, which are fraud, which got broken, labels."""
        orders = transactions.draw_day(rng, day, count, self.customers, eligible, self.catalogue, demand)
        scenarios = anomalies.inject_fraud(
            rng, day, orders, self.config.fraud_rate, self.customers, eligible, self.catalogue
        )
        transactions.settle(orders, self.catalogue)
        # Files list orders by time, and ids follow that order.
        order = np.argsort(orders.ts, kind="stable")
        position = np.empty(count, dtype=np.int64)
        position[order] = np.arange(count)
        orders = orders.take(order)
        orders.number = self.next_order + np.arange(count)
        self.next_order += count
        fraud = np.zeros(count, dtype=bool)
        for scenario in scenarios:
            scenario.rows = position[scenario.rows]
            fraud[scenario.rows] = True
            self.fraud_scenarios[scenario.kind] += 1
            self.fraud_rows[scenario.kind] += len(scenario.rows)

        coupon_from = self.config.coupon_code_from
        with_coupon = coupon_from is not None and day >= coupon_from
        drop = anomalies.dirty_transactions(
            rng,
            day,
            orders,
            fraud,
            self.config.dirty_rate,
            self.pool,
            self.customers,
            self.catalogue,
            with_coupon,
            self.writer.relative_path("transactions", day),
        )
        self.writer.write("transactions", day, drop.rows, transactions.header(with_coupon))
        clean = ~drop.mutated
        self.revenue += int(orders.total_amount[clean].sum())
        self.clean_rows += int(clean.sum())
        return orders, fraud, drop.mutated, anomalies.fraud_labels(scenarios, orders, day) + drop.labels

    def _events(
        self,
        rng: np.random.Generator,
        day: date,
        orders: transactions.TxFrame,
        eligible: int,
        demand: np.ndarray,
    ) -> list[anomalies.Label]:
        """Draw and write the day's clickstream; the labels of its dirty lines."""
        events = web_events.draw_day(
            rng,
            day,
            orders,
            round(self.config.sessions_per_transaction * len(orders)),
            self.customers,
            eligible,
            self.catalogue,
            demand,
            self.pages,
            self.next_event,
            self.next_session,
        )
        self.next_event += len(events)
        self.next_session = int(events.session.max()) + 1
        lines = web_events.rows(events, self.pages)
        labels = anomalies.dirty_events(
            rng, day, lines, self.config.web_dirty_rate, self.writer.relative_path("web_events", day)
        )
        self.writer.write("web_events", day, lines)
        return labels

    def summary(self) -> GenerationSummary:
        config, writer = self.config, self.writer
        return GenerationSummary(
            config=config.to_dict(),
            start=config.start.isoformat(),
            end=config.end.isoformat(),
            days=config.days,
            rows_written=dict(writer.rows),
            files_written=dict(writer.files),
            transactions=self.next_order - 1,
            clean_transactions=self.clean_rows,
            total_revenue=round(self.revenue / 100, 2),
            mean_basket=round(self.revenue / 100 / self.clean_rows, 2) if self.clean_rows else 0.0,
            fraud_scenarios=self.fraud_scenarios,
            fraud_transactions=self.fraud_rows,
            dirty_rows=self.dirty,
            labels=writer.labels,
        )
