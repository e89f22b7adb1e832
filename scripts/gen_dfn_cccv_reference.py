"""Cache a PyBaMM DFN (Chen2020) CC-CV charge for tests/verification/test_cells_dfn.py.

    python scripts/gen_dfn_cccv_reference.py      # needs pybamm (pip install busbarfem[pybamm])

Isothermal 298.15 K, from PyBaMM SOC 0.7 (``set_initial_state(0.7)``): 1C (5 A) charge to
4.2 V, then 4.2 V held until 50 mA (C/100), sampled every 5 s. Writes
tests/data/LG_M50_DFN_Chen2020_cccv.csv (time [s], current [A] (< 0 charges), voltage [V]).
The CV current of the DFN decays monotonically; the ECM's CV phase is checked against it.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "LG_M50_DFN_Chen2020_cccv.csv"


def main() -> int:
    """Run the CC-CV charge and write the CSV."""
    os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")
    import pybamm

    pv = pybamm.ParameterValues("Chen2020")
    pv.set_initial_state(0.7)
    exp = pybamm.Experiment(["Charge at 1C until 4.2 V (5 second period)",
                             "Hold at 4.2 V until 50 mA (5 second period)"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sol = pybamm.Simulation(pybamm.lithium_ion.DFN(), parameter_values=pv, experiment=exp).solve()
    t, i, v = (sol[k].entries for k in ("Time [s]", "Current [A]", "Voltage [V]"))
    from reference_csv import write_reference_csv

    write_reference_csv(OUT, f"PyBaMM {pybamm.__version__} DFN, Chen2020, isothermal 298.15 K, from SOC 0.7: "
                        "1C charge to 4.2 V, hold 4.2 V until 50 mA", [(None, t, i, v)])
    print(f"written: {OUT} ({t[-1]:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
