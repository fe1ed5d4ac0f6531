"""Generator settings: dataset size, date window, anomaly rates and the schema-evolution switch."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import date

DEFAULT_START = date(2023, 1, 1)
DEFAULT_END = date(2025, 12, 31)

# Ids carry 7 (customers) and 6 (products) digits; unknown ids used for dirty rows lie above the real ones.
MAX_CUSTOMERS = 5_000_000
MAX_PRODUCTS = 500_000
MAX_RATE = 0.05


@dataclass(frozen=True)
class GeneratorConfig:
    """What to generate. Same config (seed included) -> byte-identical files.

    Rates are per kind: `fraud_rate` is the expected number of scenarios of each fraud kind per transaction,
    `dirty_rate` the expected number of rows of each dirty kind per transaction row, and `web_dirty_rate`
    the same per web event.
    """

    seed: int = 42
    start: date = DEFAULT_START
    end: date = DEFAULT_END
    customers: int = 5_000
    products: int = 500
    transactions: int = 50_000
    sessions_per_transaction: float = 2.0
    fraud_rate: float = 0.001
    dirty_rate: float = 0.001
    web_dirty_rate: float = 0.0005
    coupon_code_from: date | None = None

    def __post_init__(self) -> None:
        if self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        if not 1 <= self.customers <= MAX_CUSTOMERS:
            raise ValueError(f"customers must be between 1 and {MAX_CUSTOMERS:,}")
        if not 2 <= self.products <= MAX_PRODUCTS:
            raise ValueError(f"products must be between 2 and {MAX_PRODUCTS:,}")
        if self.transactions < 0:
            raise ValueError("transactions must be >= 0")
        if self.sessions_per_transaction < 0:
            raise ValueError("sessions_per_transaction must be >= 0")
        for name in ("fraud_rate", "dirty_rate", "web_dirty_rate"):
            if not 0 <= getattr(self, name) <= MAX_RATE:
                raise ValueError(f"{name} must be between 0 and {MAX_RATE}")

    def scaled(self, factor: float) -> GeneratorConfig:
        """The same config with customers, products and transactions multiplied by `factor`."""
        if factor <= 0:
            raise ValueError("scale must be > 0")
        return replace(
            self,
            customers=max(1, round(self.customers * factor)),
            products=max(2, round(self.products * factor)),
            transactions=round(self.transactions * factor),
        )

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def to_dict(self) -> dict:
        return {k: v.isoformat() if isinstance(v, date) else v for k, v in asdict(self).items()}
