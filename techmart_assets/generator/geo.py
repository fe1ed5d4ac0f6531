"""Places: the cities customers live in (Moroccan and diaspora), cities only fraudsters buy from, their
coordinates for distances, and the IPv4 blocks addresses are drawn from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MOROCCO = "Morocco"


@dataclass(frozen=True)
class City:
    name: str
    country: str
    lat: float
    lon: float
    weight: float  # share of the customers of its group (Moroccan or diaspora) living there


HOME_CITIES: tuple[City, ...] = (
    City("Casablanca", MOROCCO, 33.573, -7.590, 28),
    City("Rabat", MOROCCO, 34.020, -6.841, 10),
    City("Marrakech", MOROCCO, 31.630, -8.008, 9),
    City("Fes", MOROCCO, 34.033, -5.000, 8),
    City("Tangier", MOROCCO, 35.759, -5.834, 8),
    City("Agadir", MOROCCO, 30.427, -9.598, 6),
    City("Meknes", MOROCCO, 33.895, -5.555, 5),
    City("Sale", MOROCCO, 34.053, -6.798, 5),
    City("Oujda", MOROCCO, 34.681, -1.908, 4),
    City("Kenitra", MOROCCO, 34.261, -6.580, 4),
    City("Tetouan", MOROCCO, 35.578, -5.368, 4),
    City("Temara", MOROCCO, 33.928, -6.907, 2),
    City("El Jadida", MOROCCO, 33.254, -8.507, 2),
    City("Nador", MOROCCO, 35.168, -2.933, 2),
    City("Beni Mellal", MOROCCO, 32.337, -6.349, 1.5),
    City("Safi", MOROCCO, 32.299, -9.237, 1.5),
    City("Laayoune", MOROCCO, 27.125, -13.162, 1),
    City("Paris", "France", 48.857, 2.352, 22),
    City("Lyon", "France", 45.764, 4.836, 6),
    City("Marseille", "France", 43.296, 5.370, 6),
    City("Montpellier", "France", 43.611, 3.877, 4),
    City("Madrid", "Spain", 40.417, -3.704, 8),
    City("Barcelona", "Spain", 41.385, 2.173, 7),
    City("Malaga", "Spain", 36.721, -4.421, 4),
    City("Brussels", "Belgium", 50.850, 4.352, 9),
    City("Antwerp", "Belgium", 51.219, 4.402, 4),
    City("Amsterdam", "Netherlands", 52.368, 4.904, 5),
    City("Rotterdam", "Netherlands", 51.924, 4.478, 3),
    City("Frankfurt", "Germany", 50.110, 8.682, 3),
    City("Dusseldorf", "Germany", 51.227, 6.773, 2),
    City("Milan", "Italy", 45.464, 9.190, 3),
    City("Turin", "Italy", 45.070, 7.687, 2),
    City("Montreal", "Canada", 45.502, -73.567, 3),
    City("Toronto", "Canada", 43.653, -79.383, 1),
    City("Dubai", "United Arab Emirates", 25.205, 55.271, 2),
    City("Abu Dhabi", "United Arab Emirates", 24.454, 54.377, 1),
)

# Where card-not-present fraud against Moroccan customers comes from in the foreign_country scenario.
FRAUD_CITIES: tuple[City, ...] = (
    City("Lagos", "Nigeria", 6.524, 3.379, 1),
    City("Moscow", "Russia", 55.756, 37.617, 1),
    City("Shenzhen", "China", 22.543, 114.058, 1),
    City("New York", "United States", 40.713, -74.006, 1),
    City("Sao Paulo", "Brazil", -23.551, -46.633, 1),
    City("Kyiv", "Ukraine", 50.450, 30.524, 1),
    City("Bucharest", "Romania", 44.427, 26.103, 1),
    City("Hanoi", "Vietnam", 21.028, 105.854, 1),
    City("Mumbai", "India", 19.076, 72.878, 1),
    City("Jakarta", "Indonesia", -6.208, 106.846, 1),
)

CITIES: tuple[City, ...] = HOME_CITIES + FRAUD_CITIES
CITY_NAMES: tuple[str, ...] = tuple(c.name for c in CITIES)
COUNTRIES: tuple[str, ...] = tuple(dict.fromkeys(c.country for c in CITIES))
CITY_COUNTRY = np.array([COUNTRIES.index(c.country) for c in CITIES])
MOROCCO_CODE = COUNTRIES.index(MOROCCO)
MOROCCAN_CITIES = np.array([i for i, c in enumerate(HOME_CITIES) if c.country == MOROCCO])
DIASPORA_CITIES = np.array([i for i, c in enumerate(HOME_CITIES) if c.country != MOROCCO])
FRAUD_CITY_CODES = np.arange(len(HOME_CITIES), len(CITIES))
CITY_WEIGHTS = np.array([c.weight for c in CITIES])

# First octets of IPv4 blocks allocated to providers of each country (a customer keeps a /24 at home).
IP_FIRST_OCTETS: dict[str, tuple[int, ...]] = {
    MOROCCO: (41, 105, 160, 196, 197),
    "France": (82, 90, 92, 109, 176),
    "Spain": (80, 83, 88, 95),
    "Belgium": (81, 91, 178),
    "Netherlands": (84, 145, 213),
    "Germany": (84, 91, 217),
    "Italy": (79, 93, 151),
    "Canada": (24, 70, 142),
    "United Arab Emirates": (5, 94),
    "Nigeria": (102, 129, 154),
    "Russia": (31, 46, 95, 178),
    "China": (36, 58, 112, 183),
    "United States": (23, 50, 67, 98),
    "Brazil": (177, 179, 189),
    "Ukraine": (46, 91, 176),
    "Romania": (5, 79, 86),
    "Vietnam": (14, 27, 113),
    "India": (49, 106, 117),
    "Indonesia": (36, 103, 114),
}
_OCTETS_BY_COUNTRY = [np.array(IP_FIRST_OCTETS[c]) for c in COUNTRIES]


def ip_prefixes(rng: np.random.Generator, cities: np.ndarray) -> np.ndarray:
    """A /24 network (three octets) in the country of each city: shape (n, 3)."""
    countries = CITY_COUNTRY[cities]
    first = np.empty(len(cities), dtype=np.int64)
    for code in np.unique(countries):
        rows = np.flatnonzero(countries == code)
        first[rows] = rng.choice(_OCTETS_BY_COUNTRY[code], len(rows))
    return np.column_stack([first, rng.integers(0, 256, (len(cities), 2))]).astype(np.uint8)


def distance_km(a: int, b: int) -> float:
    """Great-circle distance between two cities given by code."""
    lat1, lon1, lat2, lon2 = map(np.radians, (CITIES[a].lat, CITIES[a].lon, CITIES[b].lat, CITIES[b].lon))
    h = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return float(2 * 6371 * np.arcsin(np.sqrt(h)))
