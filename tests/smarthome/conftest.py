"""Generated smart homes in the Ordóñez layout: activities with the sensors they trigger."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

# activity -> sensors (Location, Type, Place) it fires; the layout differs by home letter.
ROUTINE = {
    "A": [("Sleeping", 0, 420, [("Bed", "Pressure", "Bedroom")]),
          ("Toileting", 425, 432, [("Toilet", "Flush", "Bathroom"), ("Basin", "PIR", "Bathroom")]),
          ("Breakfast", 440, 460, [("Fridge", "Magnetic", "Kitchen"), ("Toaster", "Electric", "Kitchen")]),
          ("Leaving", 480, 900, [("Maindoor", "Magnetic", "Entrance")]),
          ("Spare_Time/TV", 920, 1300, [("Seat", "Pressure", "Living")])],
    "B": [("Sleeping", 0, 400, [("Bed", "Pressure", "Bedroom"), ("Door", "PIR", "Bedroom")]),
          ("Toileting", 410, 418, [("Toilet", "Flush", "Bathroom")]),
          ("Showering", 420, 440, [("Shower", "PIR", "Bathroom"), ("Door", "PIR", "Living")]),
          ("Snack", 450, 465, [("Fridge", "Magnetic", "Kitchen"), ("Cupboard", "Magnetic", "Kitchen")]),
          ("Leaving", 480, 1000, [("Maindoor", "Magnetic", "Entrance")])],
}


def write_generated_home(folder: Path, letter: str = "A", days: int = 6, seed: int = 0) -> Path:
    """``Ordonez{letter}_Sensors.txt`` / ``_ADLs.txt`` with ``days`` days of a noisy routine."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    sensor_rows, adl_rows = [], []
    start = datetime(2012, 1, 2)
    fmt = "%Y-%m-%d %H:%M:%S"
    for d in range(days):
        for name, a, b, sensors in ROUTINE[letter]:
            jitter = int(rng.integers(0, 5))
            t0 = start + timedelta(days=d, minutes=a + jitter)
            t1 = start + timedelta(days=d, minutes=b + jitter)
            adl_rows.append(f"{t0.strftime(fmt)}\t\t{t1.strftime(fmt)}\t\t{name}")
            span = (t1 - t0).total_seconds()
            for _ in range(int(rng.integers(2, 5))):
                loc, typ, place = sensors[int(rng.integers(len(sensors)))]
                s0 = t0 + timedelta(seconds=float(rng.uniform(0, span * 0.8)))
                s1 = s0 + timedelta(seconds=float(rng.uniform(5, span * 0.2 + 6)))
                sensor_rows.append((s0, f"{s0.strftime(fmt)}\t\t{s1.strftime(fmt)}\t\t{loc}\t\t{typ}\t{place}"))
    sensor_rows.sort(key=lambda r: r[0])
    head_s = "Start time          \tEnd time            \tLocation\tType\t\tPlace\r\n" \
             "--------------------\t--------------------\t--------\t--------\t-----\r\n"
    head_a = "Start time          \tEnd time            \tActivity\t\r\n" \
             "--------------------\t--------------------\t--------\r\n"
    (folder / f"Ordonez{letter}_Sensors.txt").write_bytes((head_s + "\r\n".join(r for _, r in sensor_rows)).encode())
    (folder / f"Ordonez{letter}_ADLs.txt").write_bytes((head_a + "\r\n".join(adl_rows)).encode())
    return folder


@pytest.fixture
def generated_homes(tmp_path: Path) -> Path:
    """A ``smarthome`` folder with two generated homes (ordonez_a and ordonez_b layouts)."""
    root = tmp_path / "smarthome"
    write_generated_home(root / "ordonez", "A", days=6, seed=1)
    write_generated_home(root / "ordonez", "B", days=6, seed=2)
    return root
