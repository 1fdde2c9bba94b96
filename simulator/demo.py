"""Build the bundled demo dataset (``proximity/demo/``): a mall and a high street in Oslo.

The mall is a 4 x 3 grid of twelve stores along its corridors, two of them wrapped around an
atrium (polygons with a hole); a cross street away, the high street has six stores, circles and
polygons. About a hundred shoppers wander between them. Regenerate with
``python -m simulator.demo`` (the output is a pure function of the seed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import shapely

from simulator.workload import CityLayout, Workload, generate

__all__ = ["SEED", "CITY", "demo_layout", "demo_workload", "main"]

SEED = 2024
#: Oslo, near Karl Johans gate.
CITY = (10.7410, 59.9127)
_NAN = float("nan")


def _rect(w: float, h: float) -> shapely.Polygon:
    return shapely.box(-w / 2, -h / 2, w / 2, h / 2)


def _atrium(outer: float, hole: float) -> shapely.Polygon:
    return shapely.Polygon(_rect(outer, outer).exterior.coords, [_rect(hole, hole).exterior.coords[::-1]])


def _l_shape(a: float) -> shapely.Polygon:
    return shapely.Polygon([(-a, -a), (a, -a), (a, 0), (0, 0), (0, a), (-a, a)])


#: (id, name, block (column, row), shape in meters (radius for a circle), dwell_s, tags)
_STORES = [
    ("mall-zara", "Zara", (0, 0), _rect(44, 30), _NAN, ("mall", "fashion")),
    ("mall-hm", "H&M", (1, 0), _rect(40, 34), _NAN, ("mall", "fashion")),
    ("mall-apple", "Apple Store", (2, 0), _rect(36, 36), 120.0, ("mall", "electronics")),
    ("mall-nike", "Nike", (3, 0), _l_shape(20), _NAN, ("mall", "sports")),
    ("mall-food-court", "Food Court", (0, 1), _atrium(52, 18), 300.0, ("mall", "food")),
    ("mall-lego", "Lego", (1, 1), 18.0, _NAN, ("mall", "toys")),
    ("mall-sephora", "Sephora", (2, 1), _rect(30, 26), _NAN, ("mall", "beauty")),
    ("mall-cinema", "Cinema", (3, 1), _atrium(50, 16), 600.0, ("mall", "leisure")),
    ("mall-books", "Bookshop", (0, 2), _rect(28, 40), 120.0, ("mall", "books")),
    ("mall-starbucks", "Starbucks", (1, 2), 15.0, 120.0, ("mall", "food")),
    ("mall-pharmacy", "Pharmacy", (2, 2), _rect(24, 24), _NAN, ("mall",)),
    ("mall-supermarket", "Supermarket", (3, 2), _l_shape(24), 300.0, ("mall", "grocery")),
    ("street-bakery", "Bakery", (-1, 4), 16.0, 60.0, ("high-street", "food")),
    ("street-florist", "Florist", (0, 4), _rect(22, 18), _NAN, ("high-street",)),
    ("street-bank", "Bank", (1, 4), _rect(30, 24), _NAN, ("high-street",)),
    ("street-barber", "Barber", (2, 4), 14.0, 300.0, ("high-street",)),
    ("street-cafe", "Café Mocca", (3, 4), 20.0, 120.0, ("high-street", "food")),
    ("street-pizzeria", "Pizzeria", (4, 4), _rect(26, 20), 300.0, ("high-street", "food")),
]


def demo_layout() -> CityLayout:
    """Return the mall and high-street layout (blocks of 72 m, corridors at least 10 m wide)."""
    ids, names, blocks, shapes, dwell, tags = zip(*_STORES)
    shapes = [s.buffer(0) if isinstance(s, shapely.Geometry) else s for s in shapes]
    return CityLayout(
        72.0,
        np.array(blocks),
        list(shapes),
        list(ids),
        list(names),
        list(tags),
        np.array(dwell),
        np.full(len(ids), np.nan),
    )


def demo_workload() -> Workload:
    """Return the demo workload: 18 stores, 100 shoppers, 4000 pings."""
    return generate(
        demo_layout(),
        n_devices=100,
        n_pings=4000,
        seed=SEED,
        city=CITY,
        accuracy=True,
        interval_s=(5, 20),
        stay_s=(30.0, 420.0),
        hop_blocks=2,
    )


def main() -> None:
    """Write the demo dataset into ``proximity/demo/``."""
    out = Path(__file__).resolve().parent.parent / "proximity" / "demo"
    paths = demo_workload().write(out)
    for p in paths.values():
        print(p)


if __name__ == "__main__":
    main()
