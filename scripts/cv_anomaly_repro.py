"""Reproduce (or rule out) the CV-phase current rise of a cell set in a CC-CV charge.

    python scripts/cv_anomaly_repro.py [CELL.yaml | PRESET ...]

For each cell set: a 2s1p lumped CC-CV charge (1C to 4.2 V/cell, CV to C/100) from SOC 0.7,
with 2 s steps (the ECM integrated exactly: what the cell model itself does) and with
300 s steps (the 3D tests' dt_max), and prints the largest rise of the CV current above
its running minimum, and the ECM's OCV slope and series resistance over SOC 0.8-1.
The set LG_M50_DFN shipped before issue 17's fix shows the rise (18.8 % at 2 s steps):

    git show 03bd038:src/busbarfem/data/cells/LG_M50_DFN.yaml > /tmp/old_LG_M50_DFN.yaml
    python scripts/cv_anomaly_repro.py /tmp/old_LG_M50_DFN.yaml LG_M50_DFN

Cause (docs/cells.md): its fitted OCV table is flat from SOC 0.875 to 0.9 and bends back
up towards 0.95 (the fit's monotonicity bound was active), and R0 and two RC tables dip at
SOC 0.9-0.95. In a voltage hold I = (V_hold - OCV - V_RC) / R0: while the SOC crosses that
flat stretch the OCV stops rising and the series resistance falls, so the current rises,
with any step size. PyBaMM's DFN (the reference) decays monotonically there.
"""

from __future__ import annotations

import sys

import numpy as np


def cv_rise(cell, dt: float) -> float:
    """Largest rise of |I| in the CV phase above its running minimum [-]."""
    from busbarfem.case.loads import Load
    from busbarfem.cells.lumped import run_lumped

    load = Load(electrical_input_type="standard_charge_profile", charging_profile_type="cccv",
                c_rate=1.0, maximum_cell_state_of_charge=1.0)
    res = run_lumped(cell.model_copy(update={"initial_soc": 0.7}), load, 2, 1, dt=dt,
                     event_tolerance=1.0)
    k = res.step_index
    current = np.abs(res.module_current[np.nonzero(k == k[-1])[0][1:]])
    return float(np.max(current[1:] / np.minimum.accumulate(current)[:-1]) - 1.0)


def main(argv: list[str]) -> int:
    """Print the CV rise and the tables near full charge for each cell set."""
    from busbarfem.case.cells import CellModel
    from busbarfem.cells.ecm import CellParameters

    for name in argv or ["LG_M50_DFN"]:
        cell = CellModel(preset=name)
        p = CellParameters(cell, 1)
        soc = np.arange(0.8, 1.0001, 0.025)
        slope = np.gradient(p.ocv_ref(soc), soc)
        r_series = p.R0(soc, cell.T_ref) + p.rc_R(soc, cell.T_ref).sum(axis=1)
        print(f"{name}: CV current rise {100 * cv_rise(cell, 2.0):.2f} % (2 s steps), "
              f"{100 * cv_rise(cell, 300.0):.2f} % (300 s steps)")
        print("  SOC          " + " ".join(f"{s:6.3f}" for s in soc))
        print("  dOCV/dSOC [V]" + " ".join(f"{v:6.3f}" for v in slope))
        print("  R0+sum R [mO]" + " ".join(f"{1e3 * v:6.1f}" for v in r_series))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
