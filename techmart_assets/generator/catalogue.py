"""The product catalogue: categories, subcategories and brands, product launches and retirements, daily
price and stock changes, and the products change extract.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from techmart_assets.generator import seasonality
from techmart_assets.generator.config import GeneratorConfig
from techmart_assets.generator.draws import choice, weighted_pick
from techmart_assets.generator.render import Rows, money, plain_int, table, zero_padded

RETIRED_NEVER = 10**7  # an ordinal after every date


@dataclass(frozen=True)
class Subcategory:
    name: str
    label: str  # how a product of this subcategory is named
    low: float  # launch price range, MAD
    high: float
    brands: tuple[str, ...] = ()  # when the category's brands do not all make it
    variants: tuple[str, ...] = ()


@dataclass(frozen=True)
class Category:
    name: str
    share: float  # share of the catalogue
    demand: float  # how often one of its products sells, relative to other categories
    brands: tuple[str, ...]
    subcategories: tuple[Subcategory, ...]
    quantities: tuple[float, ...]  # P(quantity = 1, 2, 3, 4)


_SINGLE = (0.93, 0.06, 0.01, 0.0)
CATEGORIES: tuple[Category, ...] = (
    Category(
        "Smartphones",
        0.16,
        2.0,
        ("Samsung", "Apple", "Xiaomi", "Oppo", "Huawei", "Realme", "Honor"),
        (
            Subcategory("Flagship", "Smartphone", 10000, 19000, variants=("256GB", "512GB", "1TB")),
            Subcategory("Mid-range", "Smartphone", 3500, 7500, variants=("128GB", "256GB")),
            Subcategory("Budget", "Smartphone", 1200, 2800, variants=("64GB", "128GB")),
        ),
        _SINGLE,
    ),
    Category(
        "Laptops",
        0.15,
        2.6,
        ("Lenovo", "HP", "Dell", "Asus", "Acer", "MSI", "Apple"),
        (
            Subcategory("Ultrabook", "Ultrabook", 9000, 22000, variants=("16GB 512GB", "32GB 1TB")),
            Subcategory(
                "Gaming Laptop",
                "Gaming Laptop",
                11000,
                30000,
                ("Asus", "MSI", "Lenovo", "HP", "Acer"),
                ("RTX 4060", "RTX 4070", "RTX 4080"),
            ),
            Subcategory("Business Laptop", "Laptop", 7000, 16000, variants=("8GB 256GB", "16GB 512GB")),
            Subcategory("Chromebook", "Chromebook", 3500, 6000, ("Lenovo", "HP", "Acer", "Asus")),
        ),
        _SINGLE,
    ),
    Category(
        "Tablets",
        0.07,
        0.9,
        ("Samsung", "Lenovo", "Xiaomi", "Huawei"),
        (
            Subcategory("Android Tablet", "Tab", 1800, 7000, variants=("64GB", "128GB", "256GB")),
            Subcategory("iPad", "iPad", 4500, 16000, ("Apple",), ("128GB", "256GB", "512GB")),
            Subcategory("E-reader", "Reader", 1200, 3500, ("Amazon", "Kobo", "PocketBook")),
        ),
        _SINGLE,
    ),
    Category(
        "TVs",
        0.09,
        1.5,
        ("Samsung", "LG", "Sony", "TCL", "Hisense"),
        (
            Subcategory("LED TV", "LED TV", 2500, 7000, variants=("43in", "50in", "55in")),
            Subcategory("QLED TV", "QLED TV", 6000, 18000, variants=("55in", "65in", "75in")),
            Subcategory(
                "OLED TV", "OLED TV", 12000, 40000, ("LG", "Sony", "Samsung"), ("55in", "65in", "77in")
            ),
        ),
        _SINGLE,
    ),
    Category(
        "Audio",
        0.11,
        0.6,
        ("Sony", "JBL", "Bose", "Apple", "Samsung", "Marshall"),
        (
            Subcategory("Headphones", "Headphones", 500, 4500),
            Subcategory("Earbuds", "Earbuds", 300, 3000),
            Subcategory("Bluetooth Speakers", "Speaker", 400, 3500),
            Subcategory("Soundbars", "Soundbar", 1500, 9000, ("Sony", "JBL", "Bose", "Samsung", "LG")),
        ),
        (0.85, 0.12, 0.03, 0.0),
    ),
    Category(
        "Cameras",
        0.05,
        0.6,
        ("Canon", "Nikon", "Sony", "Fujifilm"),
        (
            Subcategory("Mirrorless", "Mirrorless", 8000, 30000),
            Subcategory("DSLR", "DSLR", 6000, 22000, ("Canon", "Nikon")),
            Subcategory("Action Cameras", "Action Cam", 2500, 6000, ("GoPro", "DJI", "Insta360")),
            Subcategory("Lenses", "Lens", 2500, 15000, variants=("35mm", "50mm", "24-70mm", "70-200mm")),
        ),
        _SINGLE,
    ),
    Category(
        "Gaming",
        0.09,
        0.8,
        ("Sony", "Microsoft", "Nintendo"),
        (
            Subcategory("Consoles", "Console", 3500, 7500),
            Subcategory(
                "Controllers", "Controller", 500, 1000, ("Sony", "Microsoft", "Nintendo", "Logitech", "Razer")
            ),
            Subcategory("Video Games", "Game", 300, 800, ("Sony", "Nintendo", "EA", "Ubisoft")),
            Subcategory("VR Headsets", "VR Headset", 4000, 9000, ("Meta", "Sony")),
        ),
        (0.85, 0.12, 0.03, 0.0),
    ),
    Category(
        "Wearables",
        0.06,
        0.7,
        ("Apple", "Samsung", "Garmin", "Huawei", "Xiaomi"),
        (
            Subcategory("Smartwatches", "Watch", 1500, 9000),
            Subcategory("Fitness Trackers", "Band", 300, 1500, ("Xiaomi", "Huawei", "Fitbit", "Garmin")),
        ),
        _SINGLE,
    ),
    Category(
        "Accessories",
        0.14,
        0.6,
        ("Anker", "Belkin", "Logitech", "Samsung", "Ugreen", "Baseus"),
        (
            Subcategory("Cables", "Cable", 25, 150, variants=("1m", "2m")),
            Subcategory("Chargers", "Charger", 99, 600, variants=("20W", "45W", "65W")),
            Subcategory("Phone Cases", "Case", 49, 400),
            Subcategory("Power Banks", "Power Bank", 199, 900, variants=("10000mAh", "20000mAh")),
            Subcategory(
                "Keyboards & Mice", "Keyboard", 149, 1800, ("Logitech", "Razer", "Microsoft", "Asus")
            ),
            Subcategory("Screen Protectors", "Screen Protector", 19, 120),
        ),
        (0.55, 0.25, 0.12, 0.08),
    ),
    Category(
        "Home Appliances",
        0.08,
        1.0,
        ("Samsung", "LG", "Bosch", "Whirlpool", "Beko"),
        (
            Subcategory("Refrigerators", "Refrigerator", 5000, 22000),
            Subcategory("Washing Machines", "Washer", 3500, 12000, variants=("8kg", "9kg", "11kg")),
            Subcategory(
                "Air Conditioners", "Air Conditioner", 4000, 14000, variants=("12000 BTU", "18000 BTU")
            ),
            Subcategory("Vacuum Cleaners", "Vacuum", 800, 7000, ("Dyson", "Samsung", "Bosch", "Xiaomi")),
            Subcategory("Microwaves", "Microwave", 800, 3000),
        ),
        _SINGLE,
    ),
)
CATEGORY_NAMES = tuple(c.name for c in CATEGORIES)
SUBCATEGORIES = tuple((ci, s) for ci, c in enumerate(CATEGORIES) for s in c.subcategories)
QUANTITY_PROBS = np.array([c.quantities for c in CATEGORIES])
_CATEGORIES = table(CATEGORY_NAMES)
_SUBCATEGORIES = table([s.name for _, s in SUBCATEGORIES])
_ACTIVE = table(["false", "true"])

# A few cheap accessories that never change price: the tiny purchases of the small_then_large scenario.
MICRO_PRICE_LIMIT = 50 * 100
_MICRO_SHARE = 0.01
_MICRO_SUBCATEGORY = next(i for i, (_, s) in enumerate(SUBCATEGORIES) if s.name == "Cables")

_PRICE_CHANGE_PROB = 1 / 75  # per product and day: roughly every two and a half months
_BLACK_FRIDAY_SHARE = 0.4
_BLACK_FRIDAY_DAYS = 4  # prices come back the Tuesday after Cyber Monday
_RESTOCK_PROB = 0.4


def nice_price(rng: np.random.Generator, mad: np.ndarray) -> np.ndarray:
    """Shelf prices in cents: 8999.00, 349.90, 29.00 ..."""
    step = np.where(mad >= 1000, 100, 10)
    whole = np.maximum(np.round(mad / step) * step - 1, 9).astype(np.int64)
    return whole * 100 + rng.choice(np.array([0, 0, 0, 0, 0, 0, 0, 90, 99, 50]), len(mad))


class Catalogue:
    """Every product that exists at some point of the window, and its state on the current day."""

    def __init__(self, config: GeneratorConfig, rng: np.random.Generator):
        n = config.products
        start = config.start.toordinal()
        micro = np.arange(n) < max(2, round(n * _MICRO_SHARE))
        shares = np.array([CATEGORIES[c].share / len(CATEGORIES[c].subcategories) for c, _ in SUBCATEGORIES])
        sub = np.where(micro, _MICRO_SUBCATEGORY, choice(rng, shares, n))
        low = np.array([s.low for _, s in SUBCATEGORIES])[sub]
        high = np.array([s.high for _, s in SUBCATEGORIES])[sub]
        mad = np.exp(rng.uniform(np.log(low), np.log(high)))
        mad = np.where(micro, rng.uniform(18, 46, n), mad)
        launched_before = micro | (rng.random(n) < 0.78)
        launch = np.where(
            launched_before, start - rng.integers(1, 731, n), start + rng.integers(0, config.days, n)
        )
        retiring = ~micro & (rng.random(n) < 0.22)
        retire = np.where(retiring, np.maximum(launch, start) + rng.integers(120, 1000, n), RETIRED_NEVER)
        price = nice_price(rng, mad)
        price = np.where(micro, np.minimum(price, MICRO_PRICE_LIMIT - 100), price)
        cost = np.round(price * rng.uniform(0.62, 0.85, n)).astype(np.int64)
        stock = np.where(
            mad < 200,
            rng.integers(150, 400, n),
            np.where(mad < 2000, rng.integers(40, 150, n), rng.integers(8, 50, n)),
        )
        category = np.array([c for c, _ in SUBCATEGORIES])[sub]
        popularity = rng.lognormal(0, 0.8, n) * np.array([c.demand for c in CATEGORIES])[category]
        brands, names = [], []
        for s, r in zip(sub.tolist(), rng.random((n, 4)).tolist(), strict=True):
            cat, subcat = CATEGORIES[SUBCATEGORIES[s][0]], SUBCATEGORIES[s][1]
            pool = subcat.brands or cat.brands
            brand = pool[int(r[0] * len(pool))]
            model = f"{'ACGMSXZ'[int(r[1] * 7)]}{10 + int(r[2] * 90)}"
            variant = f" {subcat.variants[int(r[3] * len(subcat.variants))]}" if subcat.variants else ""
            brands.append(brand)
            names.append(f"{brand} {subcat.label} {model}{variant}")

        # Product ids follow launch order.
        order = np.argsort(launch, kind="stable")
        self.count = n
        self.category = category[order]
        self.subcategory = sub[order]
        self.brand_names = table(sorted(set(brands)))
        self.brand = np.searchsorted(self.brand_names, np.array([b.encode() for b in brands]))[order]
        self.name = table(names)[order]
        self.launch = launch[order]
        self.retire = retire[order]
        self.micro = micro[order]
        self.popularity = popularity[order]
        self.cost = cost[order]
        self.price = price[order]
        self.stock = stock[order]
        self.full_stock = self.stock.copy()
        self.active = np.zeros(n, dtype=bool)
        self._black_friday_prices: np.ndarray | None = None
        self._first_day = config.start

    def open_day(self, rng: np.random.Generator, day: date) -> np.ndarray:
        """Apply the day's launches, retirements and price changes; the products that changed."""
        today = day.toordinal()
        changed = np.zeros(self.count, dtype=bool)
        if day == self._first_day:
            self.active = (self.launch <= today) & (self.retire > today)
            changed |= self.active
        else:
            launched = self.launch == today
            retired = self.active & (self.retire == today)
            self.active = (self.active | launched) & ~retired
            changed |= launched | retired

        repriced = self.active & ~self.micro & (rng.random(self.count) < _PRICE_CHANGE_PROB)
        factors = np.exp(rng.normal(-0.01, 0.05, self.count))
        self._reprice(rng, repriced, self.price * factors)
        changed |= repriced

        black_friday = seasonality.black_friday(day.year)
        if day == black_friday:
            promoted = self.active & ~self.micro & (rng.random(self.count) < _BLACK_FRIDAY_SHARE)
            self._black_friday_prices = np.where(promoted, self.price, 0)
            self._reprice(rng, promoted, self.price * rng.uniform(0.7, 0.9, self.count))
            changed |= promoted
        elif (
            day == black_friday + timedelta(days=_BLACK_FRIDAY_DAYS) and self._black_friday_prices is not None
        ):
            restored = self.active & (self._black_friday_prices > 0)
            self.price = np.where(restored, self._black_friday_prices, self.price)
            self._black_friday_prices = None
            changed |= restored
        return np.flatnonzero(changed)

    def _reprice(self, rng: np.random.Generator, mask: np.ndarray, target_cents: np.ndarray) -> None:
        # Prices never fall to the cost: the shop keeps at least a 5% margin.
        new = np.maximum(nice_price(rng, target_cents / 100), np.ceil(self.cost * 1.05).astype(np.int64))
        self.price = np.where(mask, new, self.price)

    def demand(self, day: date) -> np.ndarray:
        """Running sum of today's sales weights over products (zero for inactive products)."""
        season = seasonality.category_factors(day, CATEGORY_NAMES)[self.category]
        return np.cumsum(self.popularity * season * self.active)

    def pick(self, rng: np.random.Generator, demand: np.ndarray, size: int) -> np.ndarray:
        """`size` products drawn in proportion to today's `demand`."""
        return weighted_pick(rng, demand, self.count, size)

    def close_day(self, rng: np.random.Generator, products: np.ndarray, quantities: np.ndarray) -> np.ndarray:
        """Take the day's sales out of stock and restock what runs low; the products restocked."""
        self.stock = np.maximum(
            self.stock - np.bincount(products, quantities, self.count).astype(np.int64), 0
        )
        low = self.active & (self.stock < self.full_stock // 4)
        restocked = low & (rng.random(self.count) < _RESTOCK_PROB)
        self.stock = np.where(restocked, self.full_stock, self.stock)
        return np.flatnonzero(restocked)

    def extract(self, products: np.ndarray, day: date) -> Rows:
        """Full records of `products` as of the end of `day` (columns of sources.PRODUCTS).

        updated_at is the start of the day: the day's price holds for every order of that day.
        """
        return Rows(
            len(products),
            [
                [b"P", *zero_padded(products + 1, 6)],
                [self.name[products]],
                [_CATEGORIES[self.category[products]]],
                [_SUBCATEGORIES[self.subcategory[products]]],
                [self.brand_names[self.brand[products]]],
                money(self.price[products]),
                money(self.cost[products]),
                plain_int(self.stock[products]),
                [_ACTIVE[self.active[products].astype(np.int64)]],
                [f"{day.isoformat()}T00:00:00Z".encode()],
            ],
            sep=b",",
        )


def product_id(index: int) -> str:
    return f"P{index + 1:06d}"


def cents_text(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"
