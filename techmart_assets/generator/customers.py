"""The customer population: who registers when, where they live, how often they buy, their segment, and
the customers change extract.
"""

from __future__ import annotations

from datetime import date

import numpy as np

from techmart_assets.generator import geo
from techmart_assets.generator.config import GeneratorConfig
from techmart_assets.generator.draws import categorical, choice, weighted_pick
from techmart_assets.generator.render import Rows, digits, iso_date, plain_int, table, zero_padded

SEGMENTS = ("new", "regular", "premium", "vip")
_FOREIGN_SHARE = 0.06
_NIGHT_OWL_SHARE = 0.03
_REGISTERED_BEFORE_SHARE = 0.6
_MOVES_PER_CUSTOMER_YEAR = 1 / 5
# Segment thresholds on purchases made since the window opened.
_REGULAR_COUNT = 2
_PREMIUM_SPEND = 40_000 * 100
_VIP_SPEND = 150_000 * 100
_VIP_COUNT = 25

MOROCCAN_FIRST = (
    "Mohamed",
    "Youssef",
    "Amine",
    "Hamza",
    "Omar",
    "Mehdi",
    "Ayoub",
    "Karim",
    "Anas",
    "Rachid",
    "Said",
    "Hassan",
    "Ilyas",
    "Zakaria",
    "Othmane",
    "Fatima Zahra",
    "Khadija",
    "Salma",
    "Sara",
    "Imane",
    "Meryem",
    "Aya",
    "Hiba",
    "Nadia",
    "Laila",
    "Zineb",
    "Houda",
    "Soukaina",
    "Ghita",
    "Asmae",
)
MOROCCAN_LAST = (
    "El Amrani",
    "Benali",
    "Alaoui",
    "Bennani",
    "Tazi",
    "Idrissi",
    "Berrada",
    "Chraibi",
    "El Fassi",
    "Lahlou",
    "Benjelloun",
    "Ouazzani",
    "Sqalli",
    "Kettani",
    "Filali",
    "Cherkaoui",
    "Hajji",
    "Naciri",
    "Bouzidi",
    "Zerouali",
    "Skalli",
    "Mansouri",
    "Belhaj",
    "Ait Taleb",
    "Ouhaddou",
    "Jebari",
    "Tahiri",
    "Rami",
    "Sebti",
    "Guessous",
)
FOREIGN_FIRST = (
    "Lucas",
    "Hugo",
    "Louis",
    "Emma",
    "Chloe",
    "Camille",
    "Pablo",
    "Javier",
    "Lucia",
    "Sofia",
    "Noah",
    "Lina",
    "Adam",
    "Ines",
    "Thomas",
    "Julie",
    "Sanne",
    "Anna",
    "Marco",
    "Giulia",
)
FOREIGN_LAST = (
    "Martin",
    "Dubois",
    "Bernard",
    "Petit",
    "Garcia",
    "Lopez",
    "Martinez",
    "Peeters",
    "Janssens",
    "De Vries",
    "Jansen",
    "Muller",
    "Schmidt",
    "Rossi",
    "Russo",
    "Tremblay",
    "Roy",
    "Haddad",
    "Benali",
    "El Khatib",
)
EMAIL_DOMAINS = ("gmail.com", "gmail.com", "gmail.com", "hotmail.com", "yahoo.fr", "outlook.com", "menara.ma")
# Mobile numbers: international prefix and how many digits follow it.
PHONE_PLANS: dict[str, tuple[str, int]] = {
    geo.MOROCCO: ("+2126", 8),
    "France": ("+336", 8),
    "Spain": ("+346", 8),
    "Belgium": ("+324", 8),
    "Netherlands": ("+316", 8),
    "Germany": ("+4915", 9),
    "Italy": ("+393", 9),
    "Canada": ("+1514", 7),
    "United Arab Emirates": ("+97150", 7),
}

_FIRST_NAMES = table(MOROCCAN_FIRST + FOREIGN_FIRST)
_LAST_NAMES = table(MOROCCAN_LAST + FOREIGN_LAST)
_FIRST_HANDLES = table([n.lower().replace(" ", "") for n in MOROCCAN_FIRST + FOREIGN_FIRST])
_LAST_HANDLES = table([n.lower().replace(" ", "") for n in MOROCCAN_LAST + FOREIGN_LAST])
_EMAIL_DOMAINS = table(EMAIL_DOMAINS)
_PHONE_WIDTH = 9
_PHONE_PREFIXES = table([PHONE_PLANS.get(c, ("", 0))[0] for c in geo.COUNTRIES])
_PHONE_DIGITS = np.array([PHONE_PLANS.get(c, ("", 0))[1] for c in geo.COUNTRIES])
_CITIES = table(geo.CITY_NAMES)
_COUNTRIES = table(geo.COUNTRIES)
_SEGMENTS = table(SEGMENTS)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

# Where someone living in city i moves to: the other cities of the same country, weighted by population.
_HOME = np.arange(len(geo.HOME_CITIES))
_MOVE_WEIGHTS = np.where(
    (geo.CITY_COUNTRY[_HOME][:, None] == geo.CITY_COUNTRY[_HOME][None, :])
    & (_HOME[:, None] != _HOME[None, :]),
    geo.CITY_WEIGHTS[_HOME][None, :],
    0.0,
)


class Customers:
    """Customers in registration order (customer i has id C{i+1:07d}) and their state on the current day."""

    def __init__(self, config: GeneratorConfig, rng: np.random.Generator):
        n = config.customers
        start = config.start.toordinal()
        before = rng.random(n) < _REGISTERED_BEFORE_SHARE
        before[0] = True  # so that someone can buy on the first day
        # Sign-ups in the window grow over time: density rising linearly to twice its initial value.
        during = start + np.floor(config.days * (np.sqrt(1 + 3 * rng.random(n)) - 1)).astype(np.int64)
        self.registered = np.sort(np.where(before, start - rng.integers(0, 3 * 365, n), during))
        self.count = n

        self.foreign = rng.random(n) < _FOREIGN_SHARE
        home = geo.CITY_WEIGHTS[: len(geo.HOME_CITIES)]
        moroccan = geo.MOROCCAN_CITIES[choice(rng, home[geo.MOROCCAN_CITIES], n)]
        abroad = geo.DIASPORA_CITIES[choice(rng, home[geo.DIASPORA_CITIES], n)]
        self.city = np.where(self.foreign, abroad, moroccan)
        self.ip = geo.ip_prefixes(rng, self.city)
        self.night_owl = rng.random(n) < _NIGHT_OWL_SHARE
        # Heavy-tailed purchase frequency: a minority of customers places most orders.
        weight = rng.lognormal(0, 1.2, n)
        self.cum_weight = np.cumsum(weight)

        # Codes into _FIRST_NAMES / _LAST_NAMES, which list Moroccan names first, then foreign ones.
        self.first_name = np.where(
            self.foreign,
            len(MOROCCAN_FIRST) + rng.integers(0, len(FOREIGN_FIRST), n),
            rng.integers(0, len(MOROCCAN_FIRST), n),
        )
        self.last_name = np.where(
            self.foreign,
            len(MOROCCAN_LAST) + rng.integers(0, len(FOREIGN_LAST), n),
            rng.integers(0, len(MOROCCAN_LAST), n),
        )
        self.email_domain = rng.integers(0, len(EMAIL_DOMAINS), n)
        self.phone = rng.integers(0, 10**_PHONE_WIDTH, n)

        # Customers who were there before the window get a segment matching how much they buy.
        rank = np.argsort(np.argsort(-weight)) / n
        initial = np.select([rank < 0.04, rank < 0.16, rank < 0.6], [3, 2, 1], 0)
        self.segment = np.where(self.registered < start, initial, 0).astype(np.int8)
        self.purchases = np.zeros(n, dtype=np.int64)
        self.spend = np.zeros(n, dtype=np.int64)

    def registered_by(self, day: date) -> int:
        """How many customers have registered on or before `day` (they are the first ones by index)."""
        return int(np.searchsorted(self.registered, day.toordinal(), side="right"))

    def registered_on(self, day: date) -> np.ndarray:
        today = day.toordinal()
        return np.arange(
            np.searchsorted(self.registered, today), np.searchsorted(self.registered, today, "right")
        )

    def pick(self, rng: np.random.Generator, eligible: int, size: int) -> np.ndarray:
        return weighted_pick(rng, self.cum_weight, eligible, size)

    def move(self, rng: np.random.Generator, eligible: int) -> np.ndarray:
        """Some customers move to another city of their country; the customers who moved."""
        movers = np.unique(rng.integers(0, eligible, rng.poisson(eligible * _MOVES_PER_CUSTOMER_YEAR / 365)))
        self.city[movers] = categorical(rng, _MOVE_WEIGHTS, self.city[movers])
        self.ip[movers] = geo.ip_prefixes(rng, self.city[movers])
        return movers

    def record_purchases(self, customers: np.ndarray, amounts: np.ndarray) -> np.ndarray:
        """Count clean purchases towards segments; the customers whose segment went up."""
        np.add.at(self.purchases, customers, 1)
        np.add.at(self.spend, customers, amounts)
        buyers = np.unique(customers)
        spend, purchases = self.spend[buyers], self.purchases[buyers]
        earned = np.select(
            [
                (spend >= _VIP_SPEND) | (purchases >= _VIP_COUNT),
                spend >= _PREMIUM_SPEND,
                purchases >= _REGULAR_COUNT,
            ],
            [3, 2, 1],
            0,
        )
        upgraded = buyers[earned > self.segment[buyers]]
        self.segment[upgraded] = earned[earned > self.segment[buyers]]
        return upgraded

    def mean_basket(self, customer: int) -> float:
        return self.spend[customer] / self.purchases[customer] if self.purchases[customer] else 0.0

    def extract(self, customers: np.ndarray, day: date) -> Rows:
        """Full records of `customers` as of `day` (columns of sources.CUSTOMERS).

        updated_at is the start of the day, so a change covers every order of that day.
        """
        city = self.city[customers]
        country = geo.CITY_COUNTRY[city]
        phone = digits(self.phone[customers], _PHONE_WIDTH)
        for position, piece in enumerate(phone):
            piece[_PHONE_DIGITS[country] < _PHONE_WIDTH - position] = b""
        first, last = self.first_name[customers], self.last_name[customers]
        return Rows(
            len(customers),
            [
                [b"C", *zero_padded(customers + 1, 7)],
                [_FIRST_NAMES[first]],
                [_LAST_NAMES[last]],
                [
                    _FIRST_HANDLES[first],
                    b".",
                    _LAST_HANDLES[last],
                    *plain_int(customers + 1),
                    b"@",
                    _EMAIL_DOMAINS[self.email_domain[customers]],
                ],
                [_PHONE_PREFIXES[country], *phone],
                [_CITIES[city]],
                [_COUNTRIES[country]],
                [_SEGMENTS[self.segment[customers]]],
                [iso_date(self.registered[customers] - _EPOCH_ORDINAL)],
                [f"{day.isoformat()}T00:00:00Z".encode()],
            ],
            sep=b",",
        )


def customer_id(index: int) -> str:
    return f"C{index + 1:07d}"
