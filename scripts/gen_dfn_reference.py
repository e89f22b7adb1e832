"""Cache PyBaMM DFN (Chen2020) constant-current discharges for tests/verification/test_cells_dfn.py.

    python scripts/gen_dfn_reference.py      # needs pybamm (pip install busbarfem[pybamm])

Isothermal 298.15 K, from the parameter set's own initial state (4.181 V OCV), at 0.5C,
1C and 2C (PyBaMM's 1C = 5 A) to 2.5 V, sampled every 10 s. Writes
tests/data/LG_M50_DFN_Chen2020_cc.csv (c_rate, time [s], current [A], voltage [V]) and
prints the pybamm version and the initial OCV.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "LG_M50_DFN_Chen2020_cc.csv"
RATES = (0.5, 1.0, 2.0)


def main() -> int:
    """Run the three discharges and write the CSV."""
    sys.path.insert(0, str(ROOT / "src"))
    import pybamm

    from busbarfem.cells.pybamm_tests import cc_discharge

    from reference_csv import write_reference_csv

    records = []
    for c in RATES:
        t = cc_discharge("Chen2020", "DFN", c)
        records.append((c, t.time, t.current, t.voltage))
        print(f"{c}C: {t.time[-1]:.1f} s")
    write_reference_csv(OUT, f"PyBaMM {pybamm.__version__} DFN, Chen2020, isothermal 298.15 K, "
                        "initial state of the parameter set (OCV 4.1809 V), discharge to 2.5 V",
                        records, rate_column=True)
    print(f"written: {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
