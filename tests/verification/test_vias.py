"""Via arrays joining two laminated busbar layers: resistance vs a parallel-resistor estimate.

Two copper layers (40 mm wide, 1 mm thick) overlap for 20 mm with an 8 mm insulating
gap; N vias of radius 0.75 mm in a row across the width join them. The vias are a
resistive alloy (sigma_cu / 20) so the via barrels dominate and, when widely spaced,
act as independent parallel resistors:
``R ~ R_layer1 + R_layer2 + (rho_via g / (pi r^2)) / N``
with the layer resistances taken 1D from each terminal to the via row.
"""

from __future__ import annotations

import math

import gmsh
import pytest
from test_holm import SIGMA_CU, conduction_solve

from busbarfem.case.geometry import (
    Busbar, Geometry, MeshOptions, Pattern, Refinement, Terminals, ViaArray,
)
from busbarfem.geometry import generate_model

W, T, GAP, R_VIA = 0.04, 0.001, 0.008, 0.00075
SIGMA_VIA = SIGMA_CU / 20


def via_resistance(count: int) -> float:
    """FEM resistance [Ohm] of the laminated joint with ``count`` vias 10 mm apart."""
    g = Geometry(
        busbars=[Busbar(path=[(0, 0), (0.03, 0)], width=W, thickness=T),
                 Busbar(path=[(0.01, 0), (0.04, 0)], width=W, thickness=T, z0=T + GAP)],
        vias=[ViaArray(busbars=(1, 2), radius=R_VIA,
                       pattern=Pattern(center=(0.02, 0), count=count, pitch=0.01, angle=90))],
        terminals=Terminals(positive="busbar_1.start", negative="busbar_2.end"),
    )
    opts = MeshOptions(size=0.004, elements_through_thickness=1, thin_aspect=2,
                       refine=Refinement(size_factor=0.5, distance=0.003))
    gmsh.initialize()
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.model.add("vias")
        info = generate_model(g, opts)
        sigma = {n: (SIGMA_VIA if n.startswith("via_") else SIGMA_CU) for n in info.volume_names()}
        res = conduction_solve(sigma)
    finally:
        gmsh.finalize()
    return 1 / res["G"]


def estimate(count: int) -> float:
    """Parallel-resistor estimate [Ohm]: 1D layers in series with N via barrels."""
    r_layers = 2 * 0.02 / (SIGMA_CU * W * T)
    r_via = GAP / (SIGMA_VIA * math.pi * R_VIA**2)
    return r_layers + r_via / count


@pytest.mark.slow
def test_via_count_and_parallel_estimate():
    res = {n: via_resistance(n) for n in (1, 2, 4)}
    for n, r in res.items():
        print(f"{n} via(s): R = {r * 1e6:.2f} uOhm, estimate {estimate(n) * 1e6:.2f} uOhm "
              f"({(r / estimate(n) - 1) * 100:+.1f} %)")
    assert res[1] > res[2] > res[4]
    for n, r in res.items():
        assert r == pytest.approx(estimate(n), rel=0.10)
