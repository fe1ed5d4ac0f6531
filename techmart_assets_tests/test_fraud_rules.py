"""Each fraud rule on crafted event sequences: it fires on its pattern, once, with a readable reason,
and stays quiet on ordinary traffic; and the rules together against the generator's scenarios."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from datetime import UTC, date, datetime

from techmart_assets.generator import GeneratorConfig, generate
from techmart_assets.streaming.rules import (
    SCENARIO_RULES,
    CustomerState,
    FraudConfig,
    Profile,
    Transaction,
    build_profile,
    evaluate,
)

CONFIG = FraudConfig()
NOON = datetime(2025, 6, 30, 12, 0, tzinfo=UTC).timestamp()
HOME = Profile("C1", "Morocco", purchases=20, mean_amount=2_000.0, std_amount=800.0, night_share=0.0)


def tx(n: int, seconds: float, amount: float = 1_500.0, city: str = "Casablanca", country: str = "Morocco"):
    return Transaction(f"T{n}", "C1", NOON + seconds, amount, city, country)


def rules(transactions, profile=HOME, state=None):
    alerts, state = evaluate(transactions, state or CustomerState(), profile, CONFIG)
    return [a.rule_id for a in alerts], alerts, state


def test_ordinary_purchases_raise_nothing() -> None:
    fired, _, state = rules([tx(1, 0), tx(2, 3_600), tx(3, 7_200, amount=3_500.0, city="Rabat")])
    assert fired == []
    assert [t.transaction_id for t in state.recent] == ["T3"]  # older ones left the longest window


def test_velocity_fires_once_per_burst_even_across_batches() -> None:
    fired, alerts, state = rules([tx(1, 0), tx(2, 10), tx(3, 20)])
    assert fired == []
    fired, alerts, state = rules([tx(4, 30), tx(5, 40)], state=state)
    assert fired == ["velocity"]
    assert alerts[0].transaction_id == "T4" and "4 purchases within 60 s" in alerts[0].explanation
    fired, _, _ = rules([tx(6, 200), tx(7, 210), tx(8, 220), tx(9, 230)], state=state)
    assert fired == ["velocity"]  # a new burst later is a new alert


def test_amount_spike_needs_history_and_a_real_outlier() -> None:
    fired, alerts, _ = rules([tx(1, 0, amount=20_000.0)])
    assert fired == ["amount_spike"] and "10.0x the customer's mean basket" in alerts[0].explanation
    assert (
        rules(
            [tx(1, 0, amount=20_000.0)], profile=Profile("C1", "Morocco", purchases=2, mean_amount=2_000.0)
        )[0]
        == []
    )
    assert rules([tx(1, 0, amount=12_000.0)])[0] == []


def test_small_then_large_within_a_minute() -> None:
    fired, alerts, _ = rules([tx(1, 0, amount=20.0), tx(2, 30, amount=9_000.0)])
    assert fired == ["small_then_large"] and alerts[0].transaction_id == "T2"
    assert rules([tx(1, 0, amount=20.0), tx(2, 90, amount=9_000.0)])[0] == []


def test_foreign_country_against_the_home_country() -> None:
    fired, alerts, _ = rules([tx(1, 0, city="Lagos", country="Nigeria")])
    assert "foreign_country" in fired
    assert "Nigeria" in alerts[fired.index("foreign_country")].explanation
    diaspora = Profile("C1", "France", purchases=5, mean_amount=2_000.0, std_amount=500.0)
    assert rules([tx(1, 0, city="Paris", country="France")], profile=diaspora)[0] == []


def test_distant_cities_within_half_an_hour() -> None:
    fired, alerts, _ = rules([tx(1, 0, city="Tangier"), tx(2, 600, city="Agadir")])
    assert fired == ["distant_cities"] and "km apart, 10 min later" in alerts[0].explanation
    assert rules([tx(1, 0, city="Casablanca"), tx(2, 600, city="Rabat")])[0] == []  # about 90 km
    assert rules([tx(1, 0, city="Tangier"), tx(2, 7_200, city="Agadir")])[0] == []


def test_unusual_hour_only_for_customers_who_do_not_buy_at_night() -> None:
    three_am = datetime(2025, 6, 30, 3, 0, tzinfo=UTC).timestamp() - NOON
    fired, _, _ = rules([tx(1, three_am)])
    assert fired == ["unusual_hour"]
    owl = Profile("C1", "Morocco", purchases=20, mean_amount=2_000.0, std_amount=800.0, night_share=0.3)
    assert rules([tx(1, three_am)], profile=owl)[0] == []
    assert rules([tx(1, three_am)], profile=None)[0] == []  # no history: nothing is unusual yet


def read_csv(path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_the_rules_find_the_generators_scenarios_and_little_else(tmp_path) -> None:
    """Five months of generated history make the profiles; the sixth month is replayed through the
    rules in event-time order, as the stream would see it."""
    config = GeneratorConfig(
        seed=3,
        start=date(2024, 1, 1),
        end=date(2024, 6, 30),
        customers=1_500,
        products=300,
        transactions=30_000,
        sessions_per_transaction=0,
        fraud_rate=0.002,
        dirty_rate=0,
        web_dirty_rate=0,
    )
    generate(config, tmp_path)
    rows = [r for f in sorted((tmp_path / "transactions").glob("*/*.csv")) for r in read_csv(f)]
    home = {
        r["customer_id"]: r["country"]
        for f in sorted((tmp_path / "customers").glob("*/*.csv"))
        for r in read_csv(f)
    }
    fraud = [r for r in read_csv(tmp_path / "labels.csv") if r["category"] == "fraud"]
    fraud_ids = {label["record_id"] for label in fraud}

    def ts(row) -> float:
        return datetime.fromisoformat(row["transaction_ts"].replace("Z", "+00:00")).timestamp()

    split = datetime(2024, 6, 1, tzinfo=UTC).timestamp()
    history = defaultdict(list)
    for row in rows:
        if ts(row) < split and row["status"] == "completed" and row["transaction_id"] not in fraud_ids:
            history[row["customer_id"]].append((float(row["total_amount"]), ts(row)))
    profiles = {c: build_profile(c, home.get(c, "Morocco"), history[c], CONFIG) for c in home}

    replay = sorted((r for r in rows if ts(r) >= split), key=ts)
    states: dict[str, CustomerState] = defaultdict(CustomerState)
    fired = defaultdict(set)
    for row in replay:
        t = Transaction(
            row["transaction_id"],
            row["customer_id"],
            ts(row),
            float(row["total_amount"]),
            row["city"],
            row["country"],
        )
        alerts, states[t.customer_id] = evaluate(
            [t], states[t.customer_id], profiles.get(t.customer_id), CONFIG
        )
        for alert in alerts:
            fired[alert.transaction_id].add(alert.rule_id)

    replayed = {row["transaction_id"] for row in replay}
    scenarios = defaultdict(list)
    for label in fraud:
        if label["record_id"] in replayed:
            scenarios[label["kind"], label["detail"].split(";")[0]].append(label["record_id"])
    found = Counter(
        kind for (kind, _), ids in scenarios.items() if any(SCENARIO_RULES[kind] in fired[i] for i in ids)
    )
    total = Counter(kind for kind, _ in scenarios)
    assert set(total) == set(SCENARIO_RULES)
    assert sum(found.values()) / sum(total.values()) >= 0.95, (found, total)
    assert all(found[kind] / total[kind] >= 0.7 for kind in total), (found, total)
    # On clean sales, only the history-based rules may fire (a first night purchase, a first big
    # basket are what those rules define), and rarely.
    clean = Counter(rule for t, rules_ in fired.items() if t not in fraud_ids for rule in rules_)
    assert set(clean) <= {"amount_spike", "unusual_hour"}, clean
    assert sum(clean.values()) <= 0.005 * len(replay), clean
