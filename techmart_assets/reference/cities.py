"""Where a transaction's city is, from the GeoNames extract shipped in `cities.csv` (README.md here).

`locate(city, country)` answers with the city's coordinates, or None when the reference cannot place
it. Names are compared normalized (`normalize`: case, accents, hyphens and spacing do not matter),
in this order, the first that finds a city winning:

1. the GeoNames name of a city in that country;
2. one of the city's alternate names (other languages, older spellings: "Marrakech" for GeoNames'
   "Marrakesh") in that country;
3. the name alone, when the country is missing or has no city of that name: the one city of
   `LARGE_POPULATION` or more with that GeoNames name (or, only when the country is missing, that
   alternate name). The file holds every city of the world that large, so "the one" is meaningful
   there; among smaller towns it holds only Moroccan ones, and a namesake abroad would go unseen.

Within one country, two cities of the same name resolve to the more populous. A name that stays
ambiguous, or that no city has, is not placed: a wrong place would make the `distant_cities` rule
raise a false alert, while a city not placed is only counted (the fraud stream reports how many).
Alternate names include nicknames ("White House" for Casablanca), so they are trusted only when the
country agrees or is missing.

GeoNames files the cities of Western Sahara under their own country; a Moroccan customer there
writes "Morocco", so those cities are found under either name.
"""

from __future__ import annotations

import csv
import functools
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

CSV_PATH = Path(__file__).with_name("cities.csv")
COLUMNS = (
    "geonameid",
    "name",
    "alternate_names",
    "country_code",
    "country",
    "latitude",
    "longitude",
    "population",
)
ALTERNATE_SEPARATOR = "|"
# The file holds every city of the world with at least this many inhabitants (and smaller Moroccan ones).
LARGE_POPULATION = 100_000
# Countries a transaction may name for a city GeoNames files under another (GeoNames name -> also).
ALSO_COUNTRY = {"Western Sahara": "Morocco"}


def normalize(text: str) -> str:
    """A name as compared: case folded, accents dropped (NFKD), hyphens as spaces, spacing collapsed."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.replace("-", " ").split())


@dataclass(frozen=True)
class City:
    geonameid: int
    name: str
    country: str
    lat: float
    lon: float
    population: int


@dataclass(frozen=True)
class Reference:
    """The cities of `cities.csv`, indexed by normalized name: GeoNames names and alternate names apart,
    each name's cities most populous first."""

    by_name: dict[str, tuple[City, ...]]
    by_alternate: dict[str, tuple[City, ...]]
    countries: dict[int, frozenset[str]]  # geonameid -> normalized country names a transaction may give


def _index(pairs: list[tuple[str, City]]) -> dict[str, tuple[City, ...]]:
    index: dict[str, list[City]] = defaultdict(list)
    for key, city in pairs:
        if key and city not in index[key]:
            index[key].append(city)
    return {k: tuple(sorted(v, key=lambda c: (-c.population, c.geonameid))) for k, v in index.items()}


def read_reference(path: Path = CSV_PATH) -> Reference:
    names, alternates, countries = [], [], {}
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            city = City(
                int(row["geonameid"]),
                row["name"],
                row["country"],
                float(row["latitude"]),
                float(row["longitude"]),
                int(row["population"]),
            )
            names.append((normalize(city.name), city))
            alternates += [
                (normalize(a), city) for a in row["alternate_names"].split(ALTERNATE_SEPARATOR) if a
            ]
            also = ALSO_COUNTRY.get(city.country)
            countries[city.geonameid] = frozenset(normalize(c) for c in (city.country, also) if c)
    return Reference(_index(names), _index(alternates), countries)


@functools.cache
def reference() -> Reference:
    """`cities.csv`, read once per process (a fraction of a second, on first use)."""
    return read_reference()


def find(city: str, country: str | None = None) -> City | None:
    """The reference's city for a transaction's city and country (see the module's docstring)."""
    key = normalize(city or "")
    if not key:
        return None
    ref = reference()
    country_key = normalize(country or "")
    if country_key:
        for index in (ref.by_name, ref.by_alternate):
            in_country = [c for c in index.get(key, ()) if country_key in ref.countries[c.geonameid]]
            if in_country:
                return in_country[0]
    indexes = (ref.by_name, ref.by_alternate) if not country_key else (ref.by_name,)
    for index in indexes:
        large = [c for c in index.get(key, ()) if c.population >= LARGE_POPULATION]
        if large:
            return large[0] if len(large) == 1 else None
    return None


@functools.lru_cache(maxsize=65_536)
def locate(city: str, country: str | None = None) -> tuple[float, float] | None:
    """(latitude, longitude) of a transaction's city, or None when the reference cannot place it.

    Cached: the stream asks about the same few cities over and over."""
    found = find(city, country)
    return None if found is None else (found.lat, found.lon)
