"""Cache PyBaMM DFN (NCA_Kim2011) constant-current discharges for tests/verification/test_cells_dfn.py.

    python scripts/gen_nca_kim2011_reference.py      # needs pybamm; ~10 s

PyBaMM's NCA_Kim2011 parameter set (the NCA/graphite "nominal design" pouch cell of
G.-H. Kim et al., J. Electrochem. Soc. 158 (2011) A955, as PyBaMM codes it), DFN,
isothermal 298.15 K, from the parameter set's own initial state (not SOC 1, where the
fit's own CC records start; scripts/fit_cell_presets.py) at 0.5C, 1C and 2C (PyBaMM's
1C = its nominal 0.43 A) to the set's lower cut-off (2.7 V), sampled every 10 s. Writes
tests/data/NCA_Kim2011_DFN_cc.csv (c_rate, time [s], current [A], voltage [V]); its first
comment line gives the initial OCV (U_p - U_n at the initial stoichiometries), from which
the test starts the ECM.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "NCA_Kim2011_DFN_cc.csv"
RATES = (0.5, 1.0, 2.0)
SET = "NCA_Kim2011"


def initial_ocv(temperature: float = 298.15) -> float:
    """U_p - U_n [V] at the parameter set's initial electrode concentrations."""
    import pybamm

    from busbarfem.cells.pybamm_tests import parameter_values

    pv = parameter_values(SET, temperature)
    T = pybamm.Scalar(temperature)

    def ocp(electrode):
        sto = pv[f"Initial concentration in {electrode} electrode [mol.m-3]"] / \
            pv[f"Maximum concentration in {electrode} electrode [mol.m-3]"]
        fn = pv[f"{electrode.capitalize()} electrode OCP [V]"]
        try:
            return float(pv.evaluate(fn(pybamm.Scalar(sto), T)))
        except TypeError:  # OCP without a temperature argument
            return float(pv.evaluate(fn(pybamm.Scalar(sto))))

    return ocp("positive") - ocp("negative")


def main() -> int:
    """Run the three discharges and write the CSV."""
    sys.path.insert(0, str(ROOT / "src"))
    import pybamm

    from busbarfem.cells.pybamm_tests import cc_discharge, parameter_values

    v_min = float(parameter_values(SET, 298.15)["Lower voltage cut-off [V]"])
    ocv0 = initial_ocv()
    from reference_csv import write_reference_csv

    records = []
    for c in RATES:
        t = cc_discharge(SET, "DFN", c)
        records.append((c, t.time, t.current, t.voltage))
        print(f"{c}C: {t.time[-1]:.1f} s")
    write_reference_csv(OUT, f"PyBaMM {pybamm.__version__} DFN, {SET}, isothermal 298.15 K, initial state of the "
                        f"parameter set (initial OCV: {ocv0:.6f} V), constant current to {v_min:g} V",
                        records, rate_column=True)
    print(f"initial OCV {ocv0:.6f} V; written: {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
