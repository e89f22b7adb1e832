"""Cache PyBaMM's standalone DFN (Chen2020) 1C discharge for the DFN-in-3D test.

    python scripts/gen_dfn_3d_reference.py      # needs pybamm (pip install busbarfem[pybamm])

Isothermal 298.15 K, from PyBaMM SOC 1 (``set_initial_state(1.0)``), 5 A (PyBaMM's 1C) for
300 s, at the solver's output times (every 0.5 s or closer; PyBaMM adds its own steps to
the requested 1 s grid). Writes tests/data/LG_M50_DFN_Chen2020_1C_300s.csv (time [s],
current [A], voltage [V]); tests/verification/test_pybamm_cells_3d.py compares a 1s1p 3D
module whose cell is ``cell.model: pybamm`` with ``model: DFN`` against it.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "LG_M50_DFN_Chen2020_1C_300s.csv"


def main() -> int:
    """Run the discharge and write the CSV."""
    os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "true")
    import numpy as np
    import pybamm

    pv = pybamm.ParameterValues("Chen2020")
    pv.set_initial_state(1.0)
    pv.update({"Current function [A]": 5.0})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sol = pybamm.Simulation(pybamm.lithium_ion.DFN(), parameter_values=pv).solve(
            np.arange(0.0, 301.0, 1.0))
    t, i, v = (sol[k].entries for k in ("Time [s]", "Current [A]", "Voltage [V]"))
    from reference_csv import write_reference_csv

    write_reference_csv(OUT, f"PyBaMM {pybamm.__version__} DFN, Chen2020, isothermal 298.15 K, from SOC 1: "
                        "5 A (1C) discharge for 300 s", [(None, t, i, v)])
    print(f"written: {OUT} ({t[-1]:.0f} s, {v[0]:.6f} -> {v[-1]:.6f} V)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
