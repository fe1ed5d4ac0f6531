"""The raw data generator: determinism, figures that match the files, and anomalies that are really there."""

from __future__ import annotations

import argparse
import csv
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from techmart_assets.generator import GenerationSummary, GeneratorConfig, generate
from techmart_assets.generator import cli as generator_cli
from techmart_assets.generator.anomalies import FRAUD_KINDS, TRANSACTION_DIRTY_KINDS, WEB_DIRTY_KINDS
from techmart_assets.generator.customers import SEGMENTS
from techmart_assets.generator.geo import CITY_NAMES, MOROCCO, distance_km
from techmart_assets.generator.transactions import CHANNELS, CURRENCY, DEVICES, PAYMENTS, STATUSES
from techmart_assets.generator.web_events import EVENT_TYPES
from techmart_assets.sources import CUSTOMERS, PRODUCTS, TRANSACTIONS, WEB_EVENTS

START, END, COUPON_FROM = date(2024, 1, 1), date(2024, 2, 29), date(2024, 2, 1)
# About 60 days x 40 orders, with anomaly rates raised so that every kind shows up several times.
SMALL = GeneratorConfig(
    seed=7,
    start=START,
    end=END,
    customers=200,
    products=60,
    transactions=2_400,
    fraud_rate=0.01,
    dirty_rate=0.01,
    web_dirty_rate=0.002,
    coupon_code_from=COUPON_FROM,
)
TS_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
COLUMNS = list(TRANSACTIONS.columns)


@dataclass
class Line:
    file: str  # relative to the output folder
    day: str
    number: int  # 1-based line number in the file
    text: str
    fields: list[str]

    def get(self, column: str) -> str:
        return self.fields[COLUMNS.index(column)]


@dataclass
class Drop:
    out: Path
    summary: GenerationSummary
    transactions: list[Line]
    headers: dict[str, list[str]]  # transactions header per day
    events: list[Line]  # fields holds the raw line only
    customers: list[dict[str, str]]
    products: list[dict[str, str]]
    labels: list[dict[str, str]]

    def line(self, file: str, number: int) -> Line:
        return self._by_position[file, number]

    def __post_init__(self) -> None:
        self._by_position = {(x.file, x.number): x for x in self.transactions + self.events}
        self.dirty_positions = {(d["file"], int(d["line"])) for d in map(detail, self.labels) if "file" in d}
        self.fraud_ids = {label["record_id"] for label in self.labels if label["category"] == "fraud"}

    def clean_transactions(self) -> list[Line]:
        return [x for x in self.transactions if (x.file, x.number) not in self.dirty_positions]


def detail(label: dict[str, str]) -> dict[str, str]:
    return dict(part.split("=", 1) for part in label["detail"].split(";"))


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def read_drop(out: Path, summary: GenerationSummary) -> Drop:
    transactions, headers, events = [], {}, []
    for path in sorted(out.glob("transactions/*/*.csv")):
        rows = list(csv.reader(path.read_text().splitlines()))
        headers[path.parent.name] = rows[0]
        relative = str(path.relative_to(out))
        texts = path.read_text().splitlines()
        transactions += [
            Line(relative, path.parent.name, i, texts[i - 1], row) for i, row in enumerate(rows[1:], start=2)
        ]
    for path in sorted(out.glob("web_events/*/*.jsonl")):
        relative = str(path.relative_to(out))
        events += [
            Line(relative, path.parent.name, i, text, [text])
            for i, text in enumerate(path.read_text().splitlines(), start=1)
        ]
    customers = [
        row | {"_day": p.parent.name} for p in sorted(out.glob("customers/*/*.csv")) for row in read_csv(p)
    ]
    products = [
        row | {"_day": p.parent.name} for p in sorted(out.glob("products/*/*.csv")) for row in read_csv(p)
    ]
    return Drop(
        out, summary, transactions, headers, events, customers, products, read_csv(out / "labels.csv")
    )


@pytest.fixture(scope="module")
def drop(tmp_path_factory: pytest.TempPathFactory) -> Drop:
    out = tmp_path_factory.mktemp("generated")
    return read_drop(out, generate(SMALL, out))


def tree(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path) -> None:
    config = replace(SMALL, end=date(2024, 1, 20), transactions=800)
    generate(config, tmp_path / "a")
    generate(config, tmp_path / "b")
    generate(replace(config, seed=8), tmp_path / "c")
    first, second, other = tree(tmp_path / "a"), tree(tmp_path / "b"), tree(tmp_path / "c")
    assert len(first) > 60
    assert first == second
    day_file = "transactions/2024-01-10/transactions-2024-01-10.csv"
    assert other[day_file] != first[day_file]


def test_summary_matches_the_files(drop: Drop) -> None:
    s = drop.summary
    assert s.rows_written == {
        "transactions": len(drop.transactions),
        "web_events": len(drop.events),
        "customers": len(drop.customers),
        "products": len(drop.products),
    }
    assert s.files_written == {
        source: len(list(drop.out.glob(f"{source}/*/*.*")))
        for source in ("transactions", "products", "customers", "web_events")
    }
    clean = drop.clean_transactions()
    revenue = sum(Decimal(x.get("total_amount")) for x in clean)
    assert s.transactions == SMALL.transactions
    assert s.clean_transactions == len(clean)
    assert Decimal(str(s.total_revenue)) == revenue
    assert Decimal(str(s.mean_basket)) == (revenue / len(clean)).quantize(Decimal("0.01"))
    assert s.labels == len(drop.labels)
    assert sum(s.fraud_transactions.values()) == len(drop.fraud_ids)
    counted = Counter(
        (label["source"], label["kind"]) for label in drop.labels if label["category"] == "dirty"
    )
    assert {
        (src, kind): n for src, kinds in s.dirty_rows.items() for kind, n in kinds.items() if n
    } == counted
    assert json.loads((drop.out / "_generation.json").read_text()) == json.loads(json.dumps(s.to_dict()))


def test_every_anomaly_kind_is_labelled(drop: Drop) -> None:
    found = {(x["category"], x["source"], x["kind"]) for x in drop.labels}
    expected = (
        {("fraud", "transactions", k) for k in FRAUD_KINDS}
        | {("dirty", "transactions", k) for k in TRANSACTION_DIRTY_KINDS}
        | {("dirty", "web_events", k) for k in WEB_DIRTY_KINDS}
    )
    assert found == expected
    for label in drop.labels:
        if label["category"] == "fraud":
            assert label["partition_date"].replace("-", "") in detail(label)["scenario"]


def clean_problems(line: Line, known_customers: set[str], known_products: set[str]) -> list[str]:
    """Why a transaction line is not a clean row (empty list: it is clean)."""
    header_width = len(COLUMNS) + (line.day >= COUPON_FROM.isoformat())
    if len(line.fields) != header_width:
        return ["field count"]
    problems = [c for c in ("transaction_id", "customer_id", "product_id") if not line.get(c)]
    total, unit, quantity = (
        Decimal(line.get("total_amount")),
        Decimal(line.get("unit_price")),
        int(line.get("quantity")),
    )
    if not Decimal(0) < total < Decimal(10_000_000) or total != quantity * unit:
        problems.append("amount")
    try:
        datetime.strptime(line.get("transaction_ts"), TS_FORMAT)
    except ValueError:
        problems.append("timestamp")
    if line.get("customer_id") not in known_customers or line.get("product_id") not in known_products:
        problems.append("unknown key")
    if (
        line.get("currency"),
        line.get("payment_method") in PAYMENTS,
        line.get("status") in STATUSES,
        line.get("channel") in CHANNELS,
        line.get("device") in DEVICES,
    ) != (CURRENCY, True, True, True, True):
        problems.append("category")
    return problems


def test_unlabelled_rows_are_clean_and_unique(drop: Drop) -> None:
    customers = {c["customer_id"] for c in drop.customers}
    products = {p["product_id"] for p in drop.products}
    clean = drop.clean_transactions()
    assert [x for x in clean if clean_problems(x, customers, products)] == []
    assert len({x.get("transaction_id") for x in clean}) == len(clean)
    for x in drop.events:
        if (x.file, x.number) not in drop.dirty_positions:
            event = json.loads(x.text)
            assert list(event) == list(WEB_EVENTS.columns)
            assert event["customer_id"] is None or event["customer_id"] in customers
            assert event["product_id"] is None or event["product_id"] in products


def test_dirty_labels_point_at_really_dirty_rows(drop: Drop) -> None:
    customers = {c["customer_id"] for c in drop.customers}
    products = {p["product_id"] for p in drop.products}
    ids_by_day = defaultdict(set)
    for x in drop.transactions:
        ids_by_day[x.day].add(x.fields[0])
    checked = Counter()
    for label in drop.labels:
        if label["category"] != "dirty":
            continue
        d, kind = detail(label), label["kind"]
        checked[label["source"], kind] += 1
        line = drop.line(d["file"], int(d["line"]))
        assert line.day == label["partition_date"]
        if label["source"] == "web_events":
            assert label["record_id"] == f"line:{line.number}"
            if kind == "truncated_json":
                with pytest.raises(json.JSONDecodeError):
                    json.loads(line.text)
            else:
                assert "event_id" not in json.loads(line.text)
            continue
        if kind == "missing_key":
            assert line.get(d["field"]) == ""
            expected_record = (
                f"line:{line.number}" if d["field"] == "transaction_id" else line.get("transaction_id")
            )
            assert label["record_id"] == expected_record
            continue
        assert line.fields[0] == label["record_id"]
        if kind == "duplicate_id_same_day":
            assert drop.line(d["file"], int(d["first_line"])).text == line.text
        elif kind == "duplicate_id_next_day":
            assert d["original_date"] < line.day
            assert label["record_id"] in ids_by_day[d["original_date"]]
        elif kind in ("too_few_fields", "too_many_fields"):
            assert len(line.fields) == int(d["fields"])
            assert (len(line.fields) < int(d["expected"])) == (kind == "too_few_fields")
            assert int(d["expected"]) == len(drop.headers[line.day])
        elif kind == "malformed_timestamp":
            with pytest.raises(ValueError):
                datetime.strptime(line.get("transaction_ts"), TS_FORMAT)
        elif kind == "unknown_customer":
            assert line.get("customer_id") == d["customer_id"] and d["customer_id"] not in customers
        elif kind == "unknown_product":
            assert line.get("product_id") == d["product_id"] and d["product_id"] not in products
        else:
            total = Decimal(line.get("total_amount"))
            assert {
                "zero_amount": total == 0,
                "negative_amount": total < 0,
                "absurd_amount": total > 10_000_000,
            }[kind], (kind, line.text)
    assert len(checked) == len(TRANSACTION_DIRTY_KINDS) + len(WEB_DIRTY_KINDS)


def test_fraud_labels_match_their_pattern(drop: Drop) -> None:
    clean = {x.get("transaction_id"): x for x in drop.clean_transactions()}
    home = {c["customer_id"]: c["country"] for c in drop.customers}
    scenarios = defaultdict(list)
    assert drop.fraud_ids <= set(clean)  # fraud rows are valid sales
    for label in drop.labels:
        if label["category"] == "fraud":
            scenarios[label["kind"], detail(label)["scenario"]].append(clean[label["record_id"]])
    honest = defaultdict(list)  # the unlabelled rows of each customer
    for x in clean.values():
        if x.get("transaction_id") not in drop.fraud_ids:
            honest[x.get("customer_id")].append(x)

    def ts(x: Line) -> datetime:
        return datetime.strptime(x.get("transaction_ts"), TS_FORMAT)

    assert {kind for kind, _ in scenarios} == set(FRAUD_KINDS)
    for (kind, _), rows in scenarios.items():
        rows.sort(key=ts)
        customer = rows[0].get("customer_id")
        assert {x.get("customer_id") for x in rows} == {customer}
        span = (ts(rows[-1]) - ts(rows[0])).total_seconds()
        amounts = [Decimal(x.get("total_amount")) for x in rows]
        if kind == "velocity_burst":
            assert len(rows) >= 4 and span <= 60
        elif kind == "amount_spike":
            before = [Decimal(x.get("total_amount")) for x in honest[customer] if x.day < rows[0].day]
            assert before and amounts[0] >= 10 * sum(before) / len(before)
        elif kind == "small_then_large":
            assert len(rows) == 2 and amounts[0] < 50 and amounts[1] >= 5_000 and span <= 60
        elif kind == "foreign_country":
            assert home[customer] == MOROCCO and rows[0].get("country") != MOROCCO
        elif kind == "distant_cities":
            cities = [CITY_NAMES.index(x.get("city")) for x in rows]
            assert len(rows) == 2 and span <= 15 * 60 and {x.get("country") for x in rows} == {MOROCCO}
            assert distance_km(*cities) >= 400
        elif kind == "night_time":
            assert 1 <= ts(rows[0]).hour <= 4
            assert honest[customer] and all(not 1 <= ts(x).hour <= 4 for x in honest[customer])


def test_customers_buy_on_or_after_registration(drop: Drop) -> None:
    registered = {c["customer_id"]: c["registration_date"] for c in drop.customers}
    first_seen = {}
    for c in drop.customers:
        first_seen.setdefault(c["customer_id"], c["_day"])
    for x in drop.clean_transactions():
        customer = x.get("customer_id")
        assert registered[customer] <= x.day and first_seen[customer] <= x.day


def test_orders_use_the_active_price_of_the_day(drop: Drop) -> None:
    history = defaultdict(list)
    for p in drop.products:
        assert Decimal(p["cost"]) < Decimal(p["unit_price"])
        history[p["product_id"]].append((p["_day"], p["unit_price"], p["is_active"]))
    for x in drop.clean_transactions():
        _, price, active = [h for h in history[x.get("product_id")] if h[0] <= x.day][-1]
        assert (price, active) == (x.get("unit_price"), "true")


def test_change_extracts(drop: Drop) -> None:
    by_day = defaultdict(list)
    for c in drop.customers:
        by_day[c["_day"]].append(c)
        assert c["updated_at"] == f"{c['_day']}T00:00:00Z" and c["segment"] in SEGMENTS
    first_day = {c["customer_id"] for c in by_day[START.isoformat()]}
    registered = {c["customer_id"]: c["registration_date"] for c in drop.customers}
    assert first_day == {c for c, d in registered.items() if d <= START.isoformat()}
    for day, rows in by_day.items():
        assert len({c["customer_id"] for c in rows}) == len(rows)
        assert {c for c, d in registered.items() if d == day} <= {c["customer_id"] for c in rows}
    assert any(n > 1 for n in Counter(c["customer_id"] for c in drop.customers).values())
    assert list(drop.customers[0])[:-1] == list(CUSTOMERS.columns)
    assert list(drop.products[0])[:-1] == list(PRODUCTS.columns)
    assert {p["is_active"] for p in drop.products} <= {"true", "false"}
    assert any(n > 1 for n in Counter(p["product_id"] for p in drop.products).values())


def test_coupon_code_column_only_from_its_date(drop: Drop, tmp_path: Path) -> None:
    for day, header in drop.headers.items():
        assert header == COLUMNS + (["coupon_code"] if day >= COUPON_FROM.isoformat() else [])
    coupons = {x.fields[-1] for x in drop.clean_transactions() if x.day >= COUPON_FROM.isoformat()}
    assert "" in coupons and len(coupons) > 1
    # Switching the column on changes nothing before its date.
    without = replace(SMALL, coupon_code_from=None, end=date(2024, 2, 3), transactions=2_400 * 34 // 60)
    generate(without, tmp_path / "without")
    generate(replace(without, coupon_code_from=COUPON_FROM), tmp_path / "with")
    before = "transactions/2024-01-31/transactions-2024-01-31.csv"
    after = "transactions/2024-02-02/transactions-2024-02-02.csv"
    assert (tmp_path / "without" / before).read_bytes() == (tmp_path / "with" / before).read_bytes()
    plain, extended = ((tmp_path / x / after).read_text().splitlines()[0] for x in ("without", "with"))
    assert extended == plain + ",coupon_code"


def test_web_events_narrow_down_the_funnel_and_end_in_orders(drop: Drop) -> None:
    valid = [json.loads(x.text) for x in drop.events if (x.file, x.number) not in drop.dirty_positions]
    counts = Counter(e["event_type"] for e in valid)
    assert [counts[t] for t in EVENT_TYPES] == sorted((counts[t] for t in EVENT_TYPES), reverse=True)
    assert counts["purchase"] > 0 and any(e["customer_id"] is None for e in valid)
    assert len({e["event_id"] for e in valid}) == len(valid)
    orders = {
        (x.get("customer_id"), x.get("product_id"), x.get("transaction_ts"))
        for x in drop.transactions
        if len(x.fields) >= len(COLUMNS)
    }
    purchases = [
        (e["customer_id"], e["product_id"], e["event_ts"]) for e in valid if e["event_type"] == "purchase"
    ]
    assert sum(p in orders for p in purchases) >= 0.95 * len(purchases)
    assert 6 * SMALL.transactions <= len(drop.events) <= 12 * SMALL.transactions


def test_default_price_model_gives_baskets_in_the_thousands(tmp_path: Path) -> None:
    config = GeneratorConfig(end=date(2023, 12, 31), transactions=15_000, sessions_per_transaction=0)
    summary = generate(config, tmp_path)
    assert 5_000 <= summary.mean_basket <= 15_000
    assert summary.rows_written["web_events"] == 0 and not list(tmp_path.glob("web_events/*"))


def test_rerun_replaces_files_of_an_earlier_run(tmp_path: Path) -> None:
    generate(replace(SMALL, end=date(2024, 1, 3), transactions=100), tmp_path)
    generate(
        replace(SMALL, start=date(2024, 3, 1), end=date(2024, 3, 2), transactions=60, coupon_code_from=None),
        tmp_path,
    )
    days = {
        p.name
        for source in ("transactions", "web_events", "customers", "products")
        for p in (tmp_path / source).iterdir()
    }
    assert days == {"2024-03-01", "2024-03-02"}
    assert {x["partition_date"] for x in read_csv(tmp_path / "labels.csv")} <= days


def test_cli_generate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    parser = argparse.ArgumentParser(prog="techmart")
    generator_cli.add_parser(parser.add_subparsers(dest="command"))
    monkeypatch.setenv("TECHMART_LAKEHOUSE", str(tmp_path / "lake"))
    args = parser.parse_args(
        [
            "generate",
            "--start",
            "2024-05-01",
            "--end",
            "2024-05-03",
            "--customers",
            "50",
            "--products",
            "20",
            "--transactions",
            "90",
            "--no-progress",
            "--coupon-code-from",
            "2024-05-02",
        ]
    )
    assert args.func(args) == 0
    report = capsys.readouterr().out
    assert "total revenue" in report and "mean basket" in report
    summary = json.loads((tmp_path / "lake" / "raw_data" / "_generation.json").read_text())
    assert summary["transactions"] == 90 and summary["config"]["coupon_code_from"] == "2024-05-02"

    scaled = generator_cli.config_from_args(
        parser.parse_args(["generate", "--scale", "2", "--products", "7"])
    )
    assert (scaled.customers, scaled.products, scaled.transactions) == (10_000, 7, 100_000)
    bad = parser.parse_args(
        ["generate", "--start", "2024-05-03", "--end", "2024-05-01", "--out", str(tmp_path)]
    )
    assert args.func(bad) == 2
