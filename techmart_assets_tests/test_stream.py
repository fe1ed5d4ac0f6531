"""`techmart stream` against the real broker: every planned transaction and web event arrives once,
keyed by its customer (an anonymous visitor's event by its session), in the documented format; the
web sessions' purchases are the sales sent, and the labels name fraud rows that were sent."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from techmart_assets.sources import TRANSACTIONS, WEB_EVENTS
from techmart_assets.streaming import broker, producer
from techmart_assets_tests.support import free_port_pair


def test_the_plan_mints_live_ids_and_spreads_clean_customers_with_the_fraud_labels() -> None:
    now = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    planned = producer.plan(800, fraud_rate=0.01, now=now)
    assert len(planned.messages) == 800
    ids = [str(m["transaction_id"]) for m in planned.messages]
    assert len(set(ids)) == 800 and all(i.startswith("TXL260115120000") for i in ids)
    assert planned.labels and {label["record_id"] for label in planned.labels} <= set(ids)
    assert {label["category"] for label in planned.labels} == {"fraud"}
    fraud = {label["record_id"] for label in planned.labels}
    clean = [m for m in planned.messages if m["transaction_id"] not in fraud]
    # A customer base of 5,000 in rotation: 800 sales, each clean one by a customer of its own.
    assert len({m["customer_id"] for m in clean}) == len(clean)
    assert not {m["customer_id"] for m in clean} & {
        m["customer_id"] for m in planned.messages if m["transaction_id"] in fraud
    }


def test_with_their_history_clean_sales_repeat_the_customers_own_purchases() -> None:
    """Customers with history buy what they bought before (product, quantity, amounts); one
    without history keeps the generated sale; the scenarios are not touched."""
    now = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    base = producer.plan(300, fraud_rate=0.01, now=now)
    fraud = {label["record_id"] for label in base.labels}
    clean = [m for m in base.messages if m["transaction_id"] not in fraud]
    history = {
        str(m["customer_id"]): [
            producer.Purchase(f"P{i:06d}", 2, 100.0 + i, 2 * (100.0 + i)) for i in range(1, 4)
        ]
        for m in clean[::2]
    }
    planned = producer.plan(300, fraud_rate=0.01, history=history, now=now)
    assert fraud and [m["customer_id"] for m in planned.messages] == [m["customer_id"] for m in base.messages]
    for before, after in zip(base.messages, planned.messages, strict=True):
        known = history.get(str(after["customer_id"])) if after["transaction_id"] not in fraud else None
        if known:
            bought = (after["product_id"], after["quantity"], after["unit_price"], after["total_amount"])
            assert bought in {(p.product_id, p.quantity, p.unit_price, p.total_amount) for p in known}
        else:
            assert after == before
    assert len(history) == len(clean[::2]) > 100


def test_every_message_arrives_once_keyed_by_customer(kafka: broker.BrokerConfig, tmp_path: Path) -> None:
    planned = producer.plan(600, fraud_rate=0.01)
    before = datetime.now(UTC)
    result = producer.send(planned, kafka.bootstrap, rate=300)
    after = datetime.now(UTC)
    assert (result.sent, result.failed) == (600, 0)

    received = broker.read_all(kafka.bootstrap, broker.TRANSACTIONS_TOPIC)
    values = [json.loads(m.value) for m in received]
    assert sorted(v["transaction_id"] for v in values) == sorted(
        m["transaction_id"] for m in planned.messages
    )
    assert all(m.key.decode() == v["customer_id"] for m, v in zip(received, values, strict=True))
    for value in values:
        assert set(TRANSACTIONS.columns) <= set(value)
        assert isinstance(value["quantity"], int) and isinstance(value["total_amount"], float)
        # Stamped as sent: live sales happen now, not at the generated day's times.
        assert value["transaction_ts"].endswith("Z")
        assert before <= datetime.fromisoformat(value["transaction_ts"]) <= after
    # One customer's messages stay in one partition, in event-time order.
    by_customer: dict[str, list] = {}
    for message, value in zip(received, values, strict=True):
        by_customer.setdefault(value["customer_id"], []).append((message.partition, value["transaction_ts"]))
    for events in by_customer.values():
        assert len({p for p, _ in events}) == 1
        assert [t for _, t in events] == sorted(t for _, t in events)

    labels = producer.write_labels(planned.labels, tmp_path / "labels.csv")
    assert labels.read_text().splitlines()[0] == ",".join(producer.LABEL_HEADER)


def test_web_sessions_go_with_the_sales_and_their_purchases_are_sales_sent() -> None:
    now = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    history = {"C0000001": [producer.Purchase("P000001", 1, 10.0, 10.0)]}
    planned = producer.plan(800, fraud_rate=0.01, now=now, history=history, web_events_per_sale=2.0)
    events = planned.web_events
    assert 1.5 * 800 <= len(events) <= 2.5 * 800
    assert all(set(e) == set(WEB_EVENTS.columns) for e in events)
    assert len({e["event_id"] for e in events}) == len(events)
    assert all(str(e["event_id"]).startswith("EVL260115120000") for e in events)
    assert all(str(e["session_id"]).startswith("SEL260115120000") for e in events)
    assert planned.web_positions == sorted(planned.web_positions)
    assert planned.web_positions[0] >= 0 and planned.web_positions[-1] <= len(planned.messages)

    sessions: dict[object, list[dict]] = {}
    for event in events:
        sessions.setdefault(event["session_id"], []).append(event)
    sales = {(m["customer_id"], m["product_id"]) for m in planned.messages}
    bought = 0
    for session in sessions.values():
        assert len({e["customer_id"] for e in session}) == 1  # a visitor is known or not, all session long
        if session[-1]["event_type"] != "purchase":
            assert "purchase" not in {e["event_type"] for e in session}
            continue
        bought += 1
        purchase = session[-1]
        assert (purchase["customer_id"], purchase["product_id"]) in sales
        steps = [e["event_type"] for e in session]
        assert {"add_to_cart", "checkout"} <= set(steps)
        assert steps.index("add_to_cart") < steps.index("checkout") < steps.index("purchase")
        cart = next(e for e in session if e["event_type"] == "add_to_cart")
        assert cart["product_id"] == purchase["product_id"]
        assert any(e["page_url"] == f"/product/{purchase['product_id']}" for e in session)
    assert bought > 20 and len(sessions) - bought > 100  # buying and browsing sessions both
    assert any(e["customer_id"] is None for e in events)  # anonymous visitors too

    # The schedule puts each purchase just before its sale.
    scheduled = producer.schedule(planned)
    assert [m for _, t, m in scheduled if t == broker.TRANSACTIONS_TOPIC] == planned.messages
    for i, (_, topic, message) in enumerate(scheduled):
        if topic == broker.WEB_EVENTS_TOPIC and message["event_type"] == "purchase":
            sale = next(m for _, t, m in scheduled[i:] if t == broker.TRANSACTIONS_TOPIC)
            assert (sale["customer_id"], sale["product_id"]) == (
                message["customer_id"],
                message["product_id"],
            )


def test_web_events_arrive_once_keyed_by_customer_or_session(kafka: broker.BrokerConfig) -> None:
    planned = producer.plan(300, fraud_rate=0.01, web_events_per_sale=2.0)
    before = datetime.now(UTC)
    result = producer.send(planned, kafka.bootstrap, rate=300)
    after = datetime.now(UTC)
    assert (result.sent, result.web_sent, result.failed) == (300, len(planned.web_events), 0)

    received = broker.read_all(kafka.bootstrap, broker.WEB_EVENTS_TOPIC)
    values = [json.loads(m.value) for m in received]
    mine = {v["event_id"]: (m, v) for m, v in zip(received, values, strict=True)}
    assert set(mine) >= {e["event_id"] for e in planned.web_events}
    for event in planned.web_events:
        message, value = mine[event["event_id"]]
        assert message.key.decode() == (event["customer_id"] or event["session_id"])
        assert {k: v for k, v in value.items() if k != "event_ts"} == {
            k: v for k, v in event.items() if k != "event_ts"
        }
        assert before <= datetime.fromisoformat(value["event_ts"]) <= after


def test_a_broker_that_is_not_there_is_a_clear_error() -> None:
    address = f"localhost:{free_port_pair()}"
    with pytest.raises(broker.BrokerError, match=f"no Kafka broker answers at {address}"):
        producer.send(producer.plan(5), address, rate=100)
