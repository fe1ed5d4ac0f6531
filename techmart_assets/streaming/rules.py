"""The fraud rules: per customer, over event time, each with an id, thresholds in `FraudConfig`, a
score and a readable explanation.

`evaluate` is a pure function of one customer's new transactions, the state kept for that customer
(its purchases of the last minutes) and the customer's profile from silver (home, usual basket,
usual hours). The streaming query calls it per customer and micro-batch and checkpoints the state;
tests call it on crafted sequences.

- `velocity`: `velocity_count` or more purchases within `velocity_window_s` (once per burst).
- `amount_spike`: an amount at least `spike_factor` x the customer's mean basket, above the
  mean + `spike_sigmas` standard deviations and above the largest purchase they made before (with
  `spike_min_history` purchases known): a customer who once bought a 20,000 MAD television is not
  flagged for buying another.
- `small_then_large`: a purchase under `small_amount`, then one of `large_amount` or more within
  `small_large_window_s`.
- `foreign_country`: a purchase from another country than the customer's home country.
- `distant_cities`: two purchases within `distant_window_s` from cities `distant_km` or more apart,
  placed by the GeoNames city reference (`techmart_assets.reference.cities`). A purchase from a city
  the reference cannot place is judged by every other rule but not by this one; `placeable` says
  which, and the stream counts them.
- `unusual_hour`: a purchase between `night_start_hour` and `night_end_hour` (UTC) by a customer
  with history who bought at night less than `night_share_max` of the time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from techmart_assets.reference.cities import locate

EARTH_RADIUS_KM = 6371.0
# The data generator's fraud scenario kinds (labels.csv `kind`) and the rule meant to find each.
SCENARIO_RULES = {
    "velocity_burst": "velocity",
    "amount_spike": "amount_spike",
    "small_then_large": "small_then_large",
    "foreign_country": "foreign_country",
    "distant_cities": "distant_cities",
    "night_time": "unusual_hour",
}


@dataclass(frozen=True)
class FraudConfig:
    velocity_count: int = 4
    velocity_window_s: int = 60
    spike_factor: float = 8.0
    spike_sigmas: float = 4.0
    spike_min_history: int = 3
    small_amount: float = 50.0
    large_amount: float = 5_000.0
    small_large_window_s: int = 60
    distant_km: float = 400.0
    distant_window_s: int = 1_800
    night_start_hour: int = 1
    night_end_hour: int = 5
    night_share_max: float = 0.05

    @property
    def memory_s(self) -> int:
        """How long a purchase is kept in a customer's state: the longest window of any rule."""
        return max(self.velocity_window_s, self.small_large_window_s, self.distant_window_s)


@dataclass(frozen=True)
class Transaction:
    transaction_id: str
    customer_id: str
    event_ts: float  # seconds since the epoch, UTC
    amount: float
    city: str
    country: str


@dataclass(frozen=True)
class Profile:
    """What silver knows of a customer: where they live and how they usually buy."""

    customer_id: str
    home_country: str
    purchases: int = 0
    mean_amount: float = 0.0
    std_amount: float = 0.0
    night_share: float = 0.0
    max_amount: float = 0.0


def build_profile(
    customer_id: str, home_country: str, purchases: list[tuple[float, float]], config: FraudConfig
) -> Profile:
    """A customer's profile from their earlier completed purchases, (amount, event_ts) pairs.

    The definitions the streaming job computes from silver: the population mean and standard
    deviation of the amounts, the largest amount, and the share of purchases in the night hours.
    """
    amounts = [amount for amount, _ in purchases]
    if not amounts:
        return Profile(customer_id, home_country)
    mean = sum(amounts) / len(amounts)
    std = math.sqrt(sum((a - mean) ** 2 for a in amounts) / len(amounts))
    night = sum(1 for _, ts in purchases if config.night_start_hour <= _hour(ts) < config.night_end_hour)
    return Profile(customer_id, home_country, len(amounts), mean, std, night / len(amounts), max(amounts))


@dataclass
class CustomerState:
    recent: list[Transaction] = field(default_factory=list)  # `remembered` purchases, in event-time order
    velocity_alerted_until: float = 0.0  # no second velocity alert for the same burst


@dataclass(frozen=True)
class Alert:
    rule_id: str
    score: float  # 0..1: how far past the threshold
    explanation: str
    transaction_id: str
    customer_id: str
    event_ts: float


Place = tuple[str, str | None]  # (city, country) as a transaction names them


def placeable(city: str | None, country: str | None) -> bool:
    """Whether the city reference places a purchase's city: if not, `distant_cities` cannot judge it."""
    return locate(city or "", country or None) is not None


def distance_km(a: Place, b: Place) -> float | None:
    """Great-circle (haversine) distance between two (city, country) places; None when the reference
    cannot place either."""
    here, there = locate(a[0], a[1] or None), locate(b[0], b[1] or None)
    if here is None or there is None:
        return None
    (lat1, lon1), (lat2, lon2) = (tuple(map(math.radians, p)) for p in (here, there))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


def _clip(value: float) -> float:
    return round(max(0.0, min(1.0, value)), 3)


def _hour(ts: float) -> int:
    return datetime.fromtimestamp(ts, UTC).hour


Finding = tuple[float, str] | None  # (score before clipping, explanation), or nothing


def _amount_spike(tx: Transaction, profile: Profile | None, config: FraudConfig) -> Finding:
    if not profile or profile.purchases < config.spike_min_history or profile.mean_amount <= 0:
        return None
    ratio = tx.amount / profile.mean_amount
    if (
        ratio < config.spike_factor
        or tx.amount <= profile.mean_amount + config.spike_sigmas * profile.std_amount
        or tx.amount <= profile.max_amount
    ):
        return None
    return ratio / (2 * config.spike_factor), (
        f"{tx.amount:,.2f} MAD is {ratio:.1f}x the customer's mean basket of "
        f"{profile.mean_amount:,.2f} MAD over {profile.purchases} purchases"
    )


def _small_then_large(tx: Transaction, recent: list[Transaction], config: FraudConfig) -> Finding:
    if tx.amount < config.large_amount:
        return None
    small = [
        t
        for t in recent
        if t.amount < config.small_amount and tx.event_ts - t.event_ts <= config.small_large_window_s
    ]
    if not small:
        return None
    first = small[-1]
    seconds = tx.event_ts - first.event_ts
    return tx.amount / (4 * config.large_amount), (
        f"{first.amount:,.2f} MAD then {tx.amount:,.2f} MAD {seconds:.0f} s later"
    )


def _foreign_country(tx: Transaction, profile: Profile | None) -> Finding:
    if not profile or not tx.country or tx.country == profile.home_country:
        return None
    return 1.0, f"a purchase from {tx.country} ({tx.city}) by a customer living in {profile.home_country}"


def _distant_cities(tx: Transaction, recent: list[Transaction], config: FraudConfig) -> Finding:
    for earlier in reversed(recent):
        if tx.event_ts - earlier.event_ts > config.distant_window_s:
            return None
        km = distance_km((earlier.city, earlier.country), (tx.city, tx.country))
        if km is not None and km >= config.distant_km:
            minutes = (tx.event_ts - earlier.event_ts) / 60
            return km / (2 * config.distant_km), (
                f"{earlier.city} then {tx.city}, {km:,.0f} km apart, {minutes:.0f} min later"
            )
    return None


def _unusual_hour(tx: Transaction, profile: Profile | None, config: FraudConfig) -> Finding:
    hour = _hour(tx.event_ts)
    if not profile or profile.purchases < 1 or not config.night_start_hour <= hour < config.night_end_hour:
        return None
    if profile.night_share >= config.night_share_max:
        return None
    return 1 - profile.night_share / config.night_share_max, (
        f"a purchase at {hour:02d}h UTC; {profile.night_share:.0%} of the customer's "
        f"{profile.purchases} earlier purchases were at night"
    )


def evaluate(
    transactions: list[Transaction], state: CustomerState, profile: Profile | None, config: FraudConfig
) -> tuple[list[Alert], CustomerState]:
    """The alerts raised by one customer's new transactions, and the customer's state after them."""
    alerts: list[Alert] = []
    recent = list(state.recent)
    velocity_until = state.velocity_alerted_until
    for tx in sorted(transactions, key=lambda t: (t.event_ts, t.transaction_id)):
        count = 1 + sum(1 for t in recent if tx.event_ts - t.event_ts <= config.velocity_window_s)
        velocity: Finding = None
        if count >= config.velocity_count and tx.event_ts > velocity_until:
            velocity = (
                count / (2 * config.velocity_count),
                (
                    f"{count} purchases within {config.velocity_window_s} s "
                    f"(threshold {config.velocity_count})"
                ),
            )
            velocity_until = tx.event_ts + config.velocity_window_s
        findings = {
            "velocity": velocity,
            "amount_spike": _amount_spike(tx, profile, config),
            "small_then_large": _small_then_large(tx, recent, config),
            "foreign_country": _foreign_country(tx, profile),
            "distant_cities": _distant_cities(tx, recent, config),
            "unusual_hour": _unusual_hour(tx, profile, config),
        }
        for rule_id, finding in findings.items():
            if finding is not None:
                score, explanation = finding
                alerts.append(
                    Alert(rule_id, _clip(score), explanation, tx.transaction_id, tx.customer_id, tx.event_ts)
                )
        recent = remembered([*recent, tx], tx.event_ts, config)
    return alerts, replace(state, recent=recent, velocity_alerted_until=velocity_until)


def remembered(recent: list[Transaction], now: float, config: FraudConfig) -> list[Transaction]:
    """The purchases of `recent` (in event-time order) that a rule can still use at `now`.

    Every purchase within the short windows (`velocity` counts them, `small_then_large` looks for a
    small one); beyond those, up to `memory_s`, only the latest purchase from each place, since
    `distant_cities` looks for the latest purchase from a place far enough away, and an earlier one
    from the same place can never be that. So a customer's state holds a minute of purchases and a
    handful of places, not half an hour of purchases: the stream's state (rewritten every
    micro-batch) grows with the number of customers, not with the rate times the longest window.
    For purchases that arrive in event-time order the alerts are those of keeping everything.
    """
    short = max(config.velocity_window_s, config.small_large_window_s)
    kept: list[Transaction] = []
    places: set[Place] = set()
    for t in reversed(recent):
        age, place = now - t.event_ts, (t.city, t.country)
        if age <= short or (age <= config.memory_s and place not in places):
            kept.append(t)
        places.add(place)
    kept.reverse()
    return kept
