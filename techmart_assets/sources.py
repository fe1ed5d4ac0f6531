"""The four raw sources TechMart drops every day: their file format and the columns they carry.

This is the one contract shared by the data generator (which writes the drops) and bronze (which
reads them). A source may gain columns over time; these are the columns every drop has.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    name: str
    file_format: str  # "csv" or "jsonl"
    key: str
    columns: tuple[str, ...]
    description: str
    event_time: str  # the column that says when a record happened (its day is its partition)
    streamed: bool = False  # the streaming ingestion also appends to its bronze table (from Kafka)

    @property
    def extension(self) -> str:
        return self.file_format


TRANSACTIONS = Source(
    name="transactions",
    file_format="csv",
    key="transaction_id",
    columns=(
        "transaction_id",
        "customer_id",
        "product_id",
        "quantity",
        "unit_price",
        "total_amount",
        "currency",
        "payment_method",
        "status",
        "transaction_ts",
        "channel",
        "device",
        "city",
        "country",
        "ip_address",
    ),
    description="Sales transactions, one row per order line, amounts in MAD.",
    event_time="transaction_ts",
    streamed=True,
)

CUSTOMERS = Source(
    name="customers",
    file_format="csv",
    key="customer_id",
    columns=(
        "customer_id",
        "first_name",
        "last_name",
        "email",
        "phone",
        "city",
        "country",
        "segment",
        "registration_date",
        "updated_at",
    ),
    description="Daily change extract of the customer master: new customers, address and segment changes.",
    event_time="updated_at",
)

PRODUCTS = Source(
    name="products",
    file_format="csv",
    key="product_id",
    columns=(
        "product_id",
        "name",
        "category",
        "subcategory",
        "brand",
        "unit_price",
        "cost",
        "stock",
        "is_active",
        "updated_at",
    ),
    description="Daily change extract of the catalogue: new products, price and stock changes.",
    event_time="updated_at",
)

WEB_EVENTS = Source(
    name="web_events",
    file_format="jsonl",
    key="event_id",
    columns=(
        "event_id",
        "session_id",
        "customer_id",
        "event_type",
        "product_id",
        "page_url",
        "referrer",
        "device",
        "event_ts",
    ),
    description="Clickstream events from the web shop and the app, one JSON object per line (also "
    "streamed on the `web-events` topic).",
    event_time="event_ts",
    streamed=True,
)

SOURCES: dict[str, Source] = {s.name: s for s in (TRANSACTIONS, PRODUCTS, CUSTOMERS, WEB_EVENTS)}
