#!/usr/bin/env python3
"""Regenerate the property tables of ``busbarfem.physics.coolant`` from CoolProp.

The tables in ``coolant.py`` are plain numbers so that busbarfem needs no CoolProp at run
time; this script is how they were made (CoolProp 8.0.0, p = 101325 Pa)::

    python scripts/coolant_tables.py > /tmp/tables.py   # paste into coolant.py

Water: IAPWS-95 (Wagner & Pruss 2002) with the IAPWS 2008 viscosity and IAPWS 2011
conductivity (CoolProp HEOS). Air: Lemmon et al. 2000 / Lemmon & Jacobsen 2004. 50/50
ethylene glycol-water: CoolProp's fit to the ASHRAE Handbook Fundamentals tables
(INCOMP::AEG, 50 % by volume). Silicone oil: CoolProp's fit of the Dow SYLTHERM XLT data
sheet (INCOMP::XLT).
"""

from __future__ import annotations

import numpy as np

import CoolProp.CoolProp as CP

GRIDS = {
    "water": ("Water", np.arange(275.0, 370.1, 5.0)),
    "ethylene_glycol_50": ("INCOMP::AEG[0.5]", np.arange(240.0, 370.1, 5.0)),
    "air": ("Air", np.arange(200.0, 500.1, 20.0)),
    "silicone_oil": ("INCOMP::XLT", np.arange(200.0, 450.1, 5.0)),
}


def main() -> None:
    """Print the tables as Python literals (T, rho, cp, k, mu)."""
    for name, (fluid, T) in GRIDS.items():
        print(f"    {name!r}: (")
        for Ti in T:
            vals = [CP.PropsSI(p, "T", float(Ti), "P", 101325.0, fluid) for p in "DCLV"]
            print(f"        ({Ti:.2f}, {vals[0]:.6g}, {vals[1]:.6g}, {vals[2]:.6g}, {vals[3]:.6g}),")
        print("    ),")


if __name__ == "__main__":
    main()
