"""Re-derive the fitted part of the bundled LG_M50_DFN cell set from PyBaMM (needs pybamm).

    python scripts/fit_cell_presets.py            # ~30 s of DFN runs + ~2 min of fitting

Virtual tests of PyBaMM's DFN with the Chen2020 parameters (isothermal; a C/20
discharge at 298.15 K and HPPC tests at 283.15 / 298.15 / 313.15 K, see
busbarfem.cells.pybamm_tests; then constant-current discharges at 0.5C, 1C and 2C from
SOC 1 to 2.5 V and a 1C CC-CV charge from SOC 0.5 to 4.2 V held until C/100, at 298.15 K,
their squared residuals weighted (CC_WEIGHTS, CCCV_WEIGHT) so the fit sees the high-rate
depletion and the voltage hold next to the many pulse samples), fitted with busbarfem.cells.fit (3 RC pairs, Arrhenius
R0 and RC, the surface-SOC diffusion lag; the OCV table is not fitted but taken from the
parameter set's electrode OCPs, busbarfem.cells.pybamm_tests.electrode_ocv: a fitted OCV
table came out flat at SOC 0.875-0.9, which made the current of a CV hold rise, see
scripts/cv_anomaly_repro.py). Rewrites capacity, ocv, R0, R0_activation_energy,
rc_pairs and diffusion in
src/busbarfem/data/cells/LG_M50_DFN.yaml; every other field (dU/dT from O'Regan 2022, thermal
and conductivity values) and the comments above ``cell:`` stay. The fit report goes to
results/fit_LG_M50/.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "src" / "busbarfem" / "data" / "cells" / "LG_M50_DFN.yaml"
CC_WEIGHTS = {0.5: 40.0, 1.0: 40.0, 2.0: 40.0}  # C-rate: weight of a CC discharge in the fit
CCCV_WEIGHT = 20.0  # weight of the CC-CV charge (the pulse tests: 1)
FITTED = ("capacity", "ocv", "R0", "R0_activation_energy", "rc_pairs", "diffusion")


def patch_preset(cell: dict, fit_info: dict, path: Path = PRESET) -> None:
    """Replace the fitted keys of the ``cell:`` mapping in ``path``, keeping the rest."""
    text = path.read_text(encoding="utf-8")
    head, _, _ = text.partition("\ncell:\n")
    doc = yaml.safe_load(text)
    new_cell = dict(doc["cell"])
    for k in FITTED:
        new_cell[k] = cell[k]
    doc["fit"] = fit_info
    body = yaml.safe_dump({"fit": doc["fit"], "cell": new_cell}, sort_keys=False, width=100,
                          default_flow_style=None)
    head = head.split("\nfit:\n")[0]
    path.write_text(head + "\n" + body, encoding="utf-8")


def main() -> int:
    """Run the virtual tests, fit, patch the preset, write the report."""
    sys.path.insert(0, str(ROOT / "src"))
    from busbarfem.cells.fit import FitOptions, fit_ecm, write_report
    from busbarfem.cells.pybamm_tests import cc_discharge, electrode_ocv, pybamm_tests, run_experiment

    tests = pybamm_tests("Chen2020", "DFN", temperatures=(283.15, 298.15, 313.15))
    weights = {}
    for c, w in CC_WEIGHTS.items():
        t = cc_discharge("Chen2020", "DFN", c, initial_soc=1.0)
        t.name = f"cc_{c:g}C_298.15K"
        tests.append(t)
        weights[t.name] = w
    tests.append(run_experiment("Chen2020", "DFN", ["Charge at 1C until 4.2 V (5 second period)",
                                                    "Hold at 4.2 V until 50 mA (5 second period)"],
                                298.15, initial_soc=0.5, name="cccv_1C_298.15K"))
    weights["cccv_1C_298.15K"] = CCCV_WEIGHT
    res = fit_ecm(tests, FitOptions(n_rc=3, ocv=electrode_ocv("Chen2020"), diffusion=True,
                                    weights=weights))
    write_report(res, ROOT / "results" / "fit_LG_M50")
    info = {"method": "scripts/fit_cell_presets.py: busbarfem.cells.fit, 3 RC pairs, diffusion lag, "
                      "electrode OCV, PyBaMM DFN Chen2020 C/20 + HPPC at 283/298/313 K (weight 1), "
                      "CC discharges " + ", ".join(f"{c:g}C (weight {w:g})" for c, w in CC_WEIGHTS.items())
                      + f", 1C CC-CV charge from SOC 0.5 (weight {CCCV_WEIGHT:g})",
            "rms_mV": {k: round(1e3 * v, 2) for k, v in res.rms.items()},
            "capacity_source": res.capacity_source}
    patch_preset(res.cell, info)
    print(info)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
