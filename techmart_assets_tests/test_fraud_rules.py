"""Each fraud rule on crafted event sequences: it fires on its pattern, once, with a readable reason,
and stays quiet on ordinary traffic."""

from __future__ import annotations

from datetime import UTC, datetime

from techmart_assets.streaming.rules import CustomerState, FraudConfig, Profile, Transaction, evaluate

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
