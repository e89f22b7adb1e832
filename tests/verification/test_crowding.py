"""Current crowding at the bend of an L busbar versus the inner fillet radius.

At fixed current the peak |J| and peak Joule density sit at the inner corner; they fall
monotonically as the fillet radius grows from 0 (sharp re-entrant corner, where
|J| ~ r^(-1/3) is singular) to the bar width. Refining the mesh at the corner raises
the sharp-corner peak (the singularity) while the filleted peak converges.
"""

from __future__ import annotations

import gmsh
import pytest
from test_holm import SIGMA_CU, conduction_solve

from busbarfem.case.geometry import Busbar, Geometry, MeshOptions, Refinement, Terminals
from busbarfem.geometry import generate_model

WIDTH, THICK, CURRENT = 0.01, 0.002, 100.0


def l_peaks(fillet: float, corner_size: float) -> dict:
    """Peak |J| [A/m^2] and Joule density [W/m^3] of the L bar at CURRENT amperes."""
    g = Geometry(busbars=[Busbar(path=[(0, 0), (0.05, 0), (0.05, 0.05)], width=WIDTH,
                                 thickness=THICK, fillet_radius=fillet)],
                 terminals=Terminals(positive="busbar_1.start", negative="busbar_1.end"))
    opts = MeshOptions(size=0.003, elements_through_thickness=1, curvature_elements=48,
                       refine=Refinement(size=corner_size, distance=0.006))
    gmsh.initialize()
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.model.add("crowding")
        generate_model(g, opts)
        res = conduction_solve({"busbar_1": SIGMA_CU})
    finally:
        gmsh.finalize()
    scale = CURRENT / res["G"]  # volts per amp: J is linear in the applied voltage
    return {"J": res["J_max"] * scale, "q": res["q_max"] * scale**2, "where": res["where"],
            "R": 1 / res["G"]}


def test_peak_falls_with_fillet_radius():
    peaks = {r: l_peaks(r, 2.5e-4) for r in (0.0, 0.25 * WIDTH, 0.5 * WIDTH, WIDTH)}
    for r, p in peaks.items():
        print(f"fillet {r * 1e3:5.2f} mm: |J|max = {p['J'] / 1e6:7.2f} A/mm^2, "
              f"q_max = {p['q']:.3e} W/m^3, R = {p['R'] * 1e6:.3f} uOhm")
    radii = sorted(peaks)
    for r0, r1 in zip(radii[:-1], radii[1:], strict=True):
        assert peaks[r1]["J"] < peaks[r0]["J"]
        assert peaks[r1]["q"] < peaks[r0]["q"]
    # mean current density in the straight parts, for scale: the peak exceeds it
    assert peaks[WIDTH]["J"] > CURRENT / (WIDTH * THICK)


def test_sharp_corner_singular_fillet_converges():
    sharp = [l_peaks(0.0, h)["J"] for h in (4e-4, 1e-4)]
    round_ = [l_peaks(0.5 * WIDTH, h)["J"] for h in (4e-4, 1e-4)]
    print(f"sharp: {sharp[0] / 1e6:.2f} -> {sharp[1] / 1e6:.2f} A/mm^2; "
          f"r = w/2: {round_[0] / 1e6:.2f} -> {round_[1] / 1e6:.2f} A/mm^2")
    assert sharp[1] > 1.25 * sharp[0]  # |J| ~ h^(-1/3): 4x finer -> ~1.6x
    assert round_[1] == pytest.approx(round_[0], rel=0.05)
