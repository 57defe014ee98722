"""Write the small example CSV files the csv_*.yaml configs train on (standard library only).

    python configs/data/make_examples.py  # rewrites imbalanced.csv, regression.csv(.gz)

The files are fixed by the seeds below, so running this again reproduces them byte for byte.

- imbalanced.csv: 400 customers, 40 of whom churn (a 1:9 imbalance), with gaps to fill:
  numeric (tenure in months, monthly charge, support calls) and categorical (plan, contract,
  region) columns, a numeric ID to ignore, and the target `churn` (yes/no). Churners tend to
  be new, on monthly contracts, paying more and calling support more often, but the classes
  overlap, so an unweighted model can score 90% accuracy by mostly answering "no".
- regression.csv: 300 flats whose price (thousands) is a noisy linear function of the area,
  the number of rooms, the building's age and the district: a tabular regression to recover.
- regression.csv.gz: the same file gzip'd (no name or time in its header, so it too is
  reproduced byte for byte), for configs/csv_gzip.yaml.
"""

from __future__ import annotations

import csv
import gzip
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent


def imbalanced(rows: int = 400, churners: int = 40, seed: int = 6) -> list[dict]:
    rng = random.Random(seed)
    labels = ["yes"] * churners + ["no"] * (rows - churners)
    rng.shuffle(labels)
    records = []
    for i, churn in enumerate(labels):
        yes = churn == "yes"
        tenure = max(0, round(rng.gauss(16 if yes else 30, 11)))
        charge = round(max(10.0, rng.gauss(72 if yes else 60, 16)), 1)
        calls = sum(rng.random() < (0.35 if yes else 0.2) for _ in range(6))
        plan = rng.choices(["basic", "plus", "pro"], [0.3, 0.3, 0.4] if yes else [0.5, 0.3, 0.2])
        contract = rng.choices(
            ["monthly", "1-year", "2-year"], [0.7, 0.2, 0.1] if yes else [0.4, 0.3, 0.3]
        )
        record = {
            "id": 1000 + i,
            "tenure": tenure,
            "charge": charge,
            "calls": calls,
            "plan": plan[0],
            "contract": contract[0],
            "region": rng.choice(["north", "south", "east", "west"]),
            "churn": churn,
        }
        for column, rate in (("tenure", 0.05), ("charge", 0.06),
                             ("contract", 0.04), ("region", 0.03)):  # fmt: skip
            if rng.random() < rate:
                record[column] = rng.choice(["", "NA"])  # both read as missing
        records.append(record)
    return records


def regression(rows: int = 300, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    premium = {"centre": 60.0, "riverside": 35.0, "suburbs": 0.0, "outskirts": -25.0}
    records = []
    for _ in range(rows):
        area = round(rng.uniform(25, 140), 1)
        rooms = max(1, min(6, round(area / 25 + rng.gauss(0, 0.7))))
        age = rng.randint(0, 80)
        district = rng.choice(list(premium))
        price = 40 + 2.5 * area + 8 * rooms - 0.6 * age + premium[district] + rng.gauss(0, 12)
        records.append({"area_m2": area, "rooms": rooms, "building_age": age,
                        "district": district, "price_k": round(price, 1)})  # fmt: skip
    return records


def write(path: Path, records: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(records[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)


if __name__ == "__main__":
    write(HERE / "imbalanced.csv", imbalanced())
    write(HERE / "regression.csv", regression())
    packed = gzip.compress((HERE / "regression.csv").read_bytes(), mtime=0)
    (HERE / "regression.csv.gz").write_bytes(packed)
    for name in ("imbalanced.csv", "regression.csv", "regression.csv.gz"):
        print(f"wrote {HERE / name} ({(HERE / name).stat().st_size} bytes)")
