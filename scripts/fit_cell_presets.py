"""Re-derive the bundled cell sets fitted to PyBaMM DFNs: LG_M50_DFN and NCA_Kim2011_DFN (needs pybamm).

    python scripts/fit_cell_presets.py                    # both
    python scripts/fit_cell_presets.py LG_M50_DFN         # ~30 s of DFN runs + ~2 min of fitting
    python scripts/fit_cell_presets.py NCA_Kim2011_DFN    # ~25 s of DFN runs + ~1-3 min of fitting

**LG_M50_DFN.** Virtual tests of PyBaMM's DFN with the Chen2020 parameters (isothermal; a C/20
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

**NCA_Kim2011_DFN.** The same route for PyBaMM's NCA_Kim2011 parameter set (the NCA/graphite
"nominal design" pouch cell of G.-H. Kim et al., J. Electrochem. Soc. 158 (2011) A955, as
PyBaMM codes it: one 0.2 x 0.14 m electrode layer, 0.43 Ah nominal, 2.7-4.2 V): DFN C/20 +
HPPC tests at 283.15 / 298.15 / 313.15 K (weight 1) and CC discharges from SOC 1 to 2.7 V
(NCA_CC_WEIGHTS; the 2C one weighted 3x the others), 3 RC pairs (R tables on NCA_SOC_NODES), Arrhenius R0 and RC, the diffusion lag, the OCV from the
electrode OCPs. Writes the whole file src/busbarfem/data/cells/NCA_Kim2011_DFN.yaml (thermal
and collector values derived from the set's layer data, :func:`nca_thermal`) and checks it
against the cached DFN discharges from the set's initial state
(tests/data/NCA_Kim2011_DFN_cc.csv, written first by scripts/gen_nca_kim2011_reference.py when
absent); the report goes to results/fit_NCA_Kim2011/.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "src" / "busbarfem" / "data" / "cells" / "LG_M50_DFN.yaml"
CC_WEIGHTS = {0.5: 40.0, 1.0: 40.0, 2.0: 40.0}  # C-rate: weight of a CC discharge in the fit
CCCV_WEIGHT = 20.0  # weight of the CC-CV charge (the pulse tests: 1)
NCA_PRESET = ROOT / "src" / "busbarfem" / "data" / "cells" / "NCA_Kim2011_DFN.yaml"
NCA_CC = ROOT / "tests" / "data" / "NCA_Kim2011_DFN_cc.csv"
NCA_CC_WEIGHTS = {0.5: 40.0, 1.0: 40.0, 2.0: 120.0}  # C-rate: weight of a CC discharge in the fit
#: R-table SOC nodes of the NCA fit: the default ones plus 0.02 (the 2C knee)
NCA_SOC_NODES = [0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0]
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


def fit_lg_m50() -> int:
    """LG_M50_DFN: run the virtual tests, fit, patch the preset, write the report."""
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


NCA_SOURCES = [
    {"key": "Kim2011",
     "ref": "G.-H. Kim, K. Smith, K.-J. Lee, S. Santhanagopalan, A. Pesaran, Multi-domain modeling "
            "of lithium-ion batteries encompassing multi-physics in varied length scales, "
            "J. Electrochem. Soc. 158 (2011) A955-A969, doi:10.1149/1.3597614",
     "used_for": "NCA/graphite electrode OCPs, kinetics, transport and layer design behind PyBaMM's "
                 "NCA_Kim2011 set; effective volumetric heat capacity and in-plane conductivity"},
    {"key": "PyBaMM",
     "ref": "V. Sulzer et al., Python Battery Mathematical Modelling (PyBaMM), J. Open Res. Softw. "
            "9 (2021) 14; parameter set NCA_Kim2011 (pybamm 26.10.1.1)",
     "used_for": "the DFN whose virtual tests the ECM tables are fitted to; electrode area (cell "
                 "size), layer densities / heat capacities / conductivities, collector foils"},
]


def nca_thermal(pv) -> dict:
    """Cell-volume thermal and collector values of one NCA_Kim2011 layer (PyBaMM's data):
    thickness-weighted density, mass-weighted cp, in-plane k (thickness-weighted mean) and
    through-plane k (harmonic mean), collector foils' sigma * t_foil / t_layer, PyBaMM's cell
    volume and cooling area. ``k`` is ``[k_through, k_in, k_in]``, for a standing pouch
    (stacking axis x; a lying pouch needs ``[k_in, k_in, k_through]``)."""
    names = [("Negative current collector", "Negative current collector"),
             ("Negative electrode", "Negative electrode"), ("Separator", "Separator"),
             ("Positive electrode", "Positive electrode"),
             ("Positive current collector", "Positive current collector")]
    t = [float(pv[f"{n} thickness [m]"]) for n, _ in names]
    rho = [float(pv[f"{n} density [kg.m-3]"]) for n, _ in names]
    cp = [float(pv[f"{n} specific heat capacity [J.kg-1.K-1]"]) for n, _ in names]
    k = [float(pv[f"{n} thermal conductivity [W.m-1.K-1]"]) for n, _ in names]
    L = sum(t)
    mass = sum(r * x for r, x in zip(rho, t, strict=True))
    k_in = sum(kk * x for kk, x in zip(k, t, strict=True)) / L
    k_through = L / sum(x / kk for kk, x in zip(k, t, strict=True))
    return {"sigma_pos": float("%.4g" % (float(pv["Positive current collector conductivity [S.m-1]"]) * t[4] / L)),
            "sigma_neg": float("%.4g" % (float(pv["Negative current collector conductivity [S.m-1]"]) * t[0] / L)),
            "k": [round(k_through, 4), round(k_in, 3), round(k_in, 3)],
            "rho": round(mass / L, 1),
            "cp": round(sum(r * c * x for r, c, x in zip(rho, cp, t, strict=True)) / mass, 1),
            "volume": float("%.4g" % float(pv["Cell volume [m3]"])),
            "surface_area": float("%.4g" % float(pv["Cell cooling surface area [m2]"]))}


def nca_check(cell_file: Path) -> dict:
    """ECM in the lumped runner vs the cached DFN discharges from the set's initial state:
    {C-rate: (V RMS [V], charge ratio - 1)} (the check of tests/verification/test_cells_dfn.py)."""
    import numpy as np

    from busbarfem.case.cells import CellModel
    from busbarfem.case.loads import Load
    from busbarfem.cells.ecm import CellParameters
    from busbarfem.cells.lumped import run_lumped

    ocv0 = float(NCA_CC.read_text(encoding="utf-8").split("initial OCV: ")[1].split(" V")[0])
    arr = np.loadtxt(NCA_CC, delimiter=",", comments="#", skiprows=2)
    cell = CellModel(preset=str(cell_file))
    s = np.linspace(0.0, 1.0, 200001)
    soc0 = float(np.interp(ocv0, CellParameters(cell, 1).ocv_ref(s), s))
    out = {}
    for c in NCA_CC_WEIGHTS:
        t, current, voltage = arr[arr[:, 0] == c, 1:].T
        res = run_lumped(cell.model_copy(update={"initial_soc": soc0}),
                         Load(current=float(current[1]), minimum_cell_voltage=2.7,
                              minimum_cell_state_of_charge=0.0), 1, 1, dt=10.0)
        span = t <= min(t[-1], res.time[-1])
        err = np.interp(t[span], res.time, res.cell_voltage[:, 0, 0]) - voltage[span]
        q = float(np.sum(np.diff(t) * current[1:]) / 3600.0)
        out[c] = (float(np.sqrt(np.mean(err**2))), res.discharged_Ah / q - 1.0)
    return out


def fit_nca_kim2011() -> int:
    """NCA_Kim2011_DFN: virtual tests, fit, write the whole cell file, check it against the cache."""
    import yaml

    from busbarfem.cells.fit import FitOptions, fit_ecm, write_report
    from busbarfem.cells.pybamm_tests import cc_discharge, electrode_ocv, parameter_values, pybamm_tests

    pset = "NCA_Kim2011"
    pv = parameter_values(pset, 298.15)
    v_min = float(pv["Lower voltage cut-off [V]"])
    tests = pybamm_tests(pset, "DFN", temperatures=(283.15, 298.15, 313.15))
    weights = {}
    for c, w in NCA_CC_WEIGHTS.items():
        t = cc_discharge(pset, "DFN", c, initial_soc=1.0)
        t.name = f"cc_{c:g}C_298.15K"
        tests.append(t)
        weights[t.name] = w
    res = fit_ecm(tests, FitOptions(n_rc=3, v_min=v_min, ocv=electrode_ocv(pset), diffusion=True,
                                    weights=weights, soc_nodes=NCA_SOC_NODES))
    write_report(res, ROOT / "results" / "fit_NCA_Kim2011")
    if not NCA_CC.exists():
        import subprocess

        subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_nca_kim2011_reference.py")], check=True)
    doc = {"name": "NCA_Kim2011_DFN",
           "description": f"NCA/graphite pouch cell of Kim 2011 as coded in PyBaMM (one electrode layer, "
                          f"{res.capacity:.3f} Ah, 2.7-4.2 V), ECM fitted to its DFN",
           "sources": NCA_SOURCES,
           "fit": {"method": "scripts/fit_cell_presets.py NCA_Kim2011_DFN: busbarfem.cells.fit, 3 RC pairs, "
                             "diffusion lag, electrode OCV, PyBaMM DFN NCA_Kim2011 C/20 + HPPC at "
                             "283/298/313 K (weight 1), R nodes + SOC 0.02, CC discharges from SOC 1 to 2.7 V at "
                             + ", ".join(f"{c:g}C (weight {w:g})" for c, w in NCA_CC_WEIGHTS.items()),
                   "rms_mV": {k: round(1e3 * v, 2) for k, v in res.rms.items()},
                   "capacity_source": res.capacity_source},
           "cell": {**res.cell, "initial_soc": 1.0, **nca_thermal(pv)}}
    body = yaml.safe_dump(doc, sort_keys=False, width=100, default_flow_style=None)
    NCA_PRESET.write_text(NCA_HEADER.format(check="(run the script again to fill in)") + body, encoding="utf-8")
    check = nca_check(NCA_PRESET)
    text = (" / ".join(f"{1e3 * r:.1f}" for r, _ in check.values()) + " mV RMS at "
            + " / ".join(f"{c:g}C" for c in check) + ", the charge by "
            + " / ".join(f"{100 * q:+.2f}" for _, q in check.values()) + " %")
    NCA_PRESET.write_text(NCA_HEADER.format(check=text) + body, encoding="utf-8")
    print(doc["fit"], {c: (round(1e3 * r, 2), round(100 * q, 3)) for c, (r, q) in check.items()})
    return 0


NCA_HEADER = """\
# NCA/graphite pouch cell of Kim et al. 2011 (NREL "nominal design"), as PyBaMM's
# "NCA_Kim2011" parameter set codes it: ONE 0.2 x 0.14 m electrode layer (0.43 Ah nominal,
# 2.7-4.2 V), not a multi-layer production cell. Parameter set for busbarfem's cell ECM.
#
# Honesty notes:
#  * OCV(SOC) is PyBaMM's U_p - U_n of the Kim2011 electrode OCPs along its electrode
#    balance (busbarfem.cells.pybamm_tests.electrode_ocv), not fitted. SOC 1 / 0 are that
#    balance at 4.2 V / 2.7 V; capacity = the DFN's C/20 charge between them.
#  * capacity, R0(SOC) with its Arrhenius activation energy, three RC pairs and the
#    surface-SOC diffusion lag are FITTED (scripts/fit_cell_presets.py NCA_Kim2011_DFN) to
#    virtual tests of PyBaMM's DFN with this set: C/20 at 298.15 K, HPPC at 283.15 /
#    298.15 / 313.15 K, constant-current discharges from SOC 1 at 0.5C / 1C / 2C (weighted),
#    all isothermal. The fitted activation energies describe that model (Arrhenius
#    exchange currents and diffusivities), not a measured cell.
#  * Against the DFN at constant current to 2.7 V from the set's initial state (298.15 K,
#    tests/data/NCA_Kim2011_DFN_cc.csv) the voltage is off by
#    {check}
#    (docs/cells.md, tests/verification/test_cells_dfn.py). The price: the 10 s HPPC
#    pulses are fitted worse than the long discharges (fit.rms_mV below).
#  * No dU/dT (the set's entropic changes are 0).
#  * Thermal and collector values are per electrode layer from PyBaMM's layer data
#    (scripts/fit_cell_presets.py: nca_thermal): rho and cp give Kim 2011's effective
#    volumetric heat capacity (PyBaMM scaled the layer densities to it), k is
#    [through-plane, in-plane, in-plane] for a standing pouch (stacking axis x; use
#    [k_in, k_in, k_through] for orientation: lying), sigma_* are the foils' in-plane
#    conductance spread over the layer. A real pouch adds packaging: scale capacity (and
#    divide resistances by the same factor) to your cell, and check rho, cp and k.
"""


def main(argv: list[str] | None = None) -> int:
    """Fit the presets named on the command line (default: all)."""
    sys.path.insert(0, str(ROOT / "src"))
    jobs = {"LG_M50_DFN": fit_lg_m50, "NCA_Kim2011_DFN": fit_nca_kim2011}
    names = (sys.argv[1:] if argv is None else argv) or list(jobs)
    for name in names:
        if name not in jobs:
            print(f"unknown preset {name!r}; valid: {', '.join(jobs)}", file=sys.stderr)
            return 2
    for name in names:
        jobs[name]()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
