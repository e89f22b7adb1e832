"""Derive the bundled Ecker2015_DFN cell set from PyBaMM (needs pybamm) and cache its check.

    python scripts/fit_ecker2015.py        # ~1 min of DFN runs + ~1 min of fitting

PyBaMM's Ecker2015 parameter set (Kokam SLPB 75106100 NMC/graphite pouch cell of
M. Ecker et al., J. Electrochem. Soc. 162 (2015) A1836 and A1849, as coded in PyBaMM with
its own electrode area, nominal 0.157 Ah), DFN, isothermal 298.15 K: a C/20 discharge and an
HPPC test (busbarfem.cells.pybamm_tests), fitted with busbarfem.cells.fit (3 RC pairs; the
OCV table from the electrode OCPs). Writes src/busbarfem/data/cells/Ecker2015_DFN.yaml and
tests/data/Ecker2015_DFN_cc.csv (DFN constant-current discharges from SOC 1 at 0.5C / 1C /
2C to the lower cut-off; c_rate, time [s], current [A], voltage [V]).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "src" / "busbarfem" / "data" / "cells" / "Ecker2015_DFN.yaml"
CC = ROOT / "tests" / "data" / "Ecker2015_DFN_cc.csv"
HEADER = """\
# Ecker 2015 (Kokam SLPB 75106100 NMC/graphite), as PyBaMM's "Ecker2015" parameter set codes
# it (its electrode area gives a 0.157 Ah nominal cell, not the 7.5 Ah pouch cell).
#
# Honesty notes:
#  * OCV(SOC) is PyBaMM's U_p - U_n of the Ecker2015 electrode OCPs along its electrode
#    balance (busbarfem.cells.pybamm_tests.electrode_ocv), not fitted.
#  * capacity, R0(SOC) and three RC pairs are FITTED (scripts/fit_ecker2015.py) to virtual
#    tests of PyBaMM's DFN with this set at 298.15 K only (a C/20 discharge and an HPPC
#    test): no temperature dependence was identified (activation energies 0), no dU/dT.
#  * Against the DFN at constant current from SOC 1 to 2.5 V (298.15 K) the voltage is off
#    by 4.0 / 11.1 / 17.4 mV RMS at 0.5C / 1C / 2C, the charge by +0.01 / +0.06 / +0.18 %
#    (docs/cells.md, tests/verification/test_cells_dfn.py).
#  * Thermal and conductivity values are busbarfem's defaults, not this cell's.
"""
SOURCES = [
    {"key": "Ecker2015",
     "ref": "M. Ecker, T. K. D. Tran, P. Dechent, S. Kaebitz, A. Warnecke, D. U. Sauer, "
            "Parameterization of a Physico-Chemical Model of a Lithium-Ion Battery I / II, "
            "J. Electrochem. Soc. 162 (2015) A1836 and A1849, doi:10.1149/2.0551509jes, "
            "doi:10.1149/2.0541509jes",
     "used_for": "electrode OCPs, kinetics, transport behind PyBaMM's Ecker2015 set"},
    {"key": "PyBaMM",
     "ref": "V. Sulzer et al., Python Battery Mathematical Modelling (PyBaMM), J. Open Res. "
            "Softw. 9 (2021) 14; parameter set Ecker2015 (pybamm 26.10.1.1)",
     "used_for": "the DFN whose virtual tests the ECM tables are fitted to; cell size"},
]


def main() -> int:
    """Fit, write the preset and the cached CC discharges."""
    sys.path.insert(0, str(ROOT / "src"))
    import numpy as np
    import yaml

    from busbarfem.cells.fit import FitOptions, fit_ecm
    from busbarfem.cells.pybamm_tests import electrode_ocv, parameter_values, pybamm_tests, run_experiment

    pv = parameter_values("Ecker2015", 298.15)
    v_min = float(pv["Lower voltage cut-off [V]"])
    tests = pybamm_tests("Ecker2015", "DFN", temperatures=(298.15,))
    res = fit_ecm(tests, FitOptions(n_rc=3, v_min=v_min, ocv=electrode_ocv("Ecker2015")))
    with open(CC, "w", encoding="utf-8") as fh:
        fh.write("# PyBaMM DFN, Ecker2015, isothermal 298.15 K, from SOC 1, constant current to the "
                 f"lower cut-off {v_min:g} V\nc_rate,time [s],current [A],voltage [V]\n")
        for c in (0.5, 1.0, 2.0):
            t = run_experiment("Ecker2015", "DFN", [f"Discharge at {c:g}C until {v_min:g} V (10 second period)"],
                               298.15, initial_soc=1.0, name=f"cc_{c:g}C")
            for row in zip(t.time, t.current, t.voltage, strict=True):
                fh.write("%g,%.4f,%.6g,%.7f\n" % (c, *row))
    doc = {"name": "Ecker2015_DFN",
           "description": f"Kokam NMC/graphite cell of Ecker 2015 as coded in PyBaMM ({res.capacity:.3f} Ah), "
                          "ECM fitted to its DFN at 298.15 K",
           "sources": SOURCES,
           "fit": {"method": "busbarfem fit-ecm --pybamm Ecker2015 --pybamm-model DFN --n-rc 3 "
                             "--electrode-ocv --temperatures 298.15 (scripts/fit_ecker2015.py)",
                   "rms_mV": {k: round(1e3 * v, 2) for k, v in res.rms.items()},
                   "capacity_source": res.capacity_source},
           "cell": {**res.cell, "initial_soc": 1.0}}
    PRESET.write_text(HEADER + yaml.safe_dump(doc, sort_keys=False, width=100, default_flow_style=None),
                      encoding="utf-8")
    print(doc["fit"], f"written: {PRESET}, {CC}", np.round(res.capacity, 5))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
