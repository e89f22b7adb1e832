"""Sheet-metal bend lines on a flat DXF pattern (issue 16).

A 100 x 10 mm strip drawn in a DXF file (mm units), 1 mm thick, bent 90 deg about a bend
line across its middle with inner radius 3 mm and K = 0.5. The bend allowance keeps the
developed length at mid-thickness equal to the flat length, so:

* volume = area x thickness (0.1 %, mesh; exact for the analytic volume);
* R = L_flat / (sigma W T) in the thin-strip limit (0.5 %), and exactly the two straight
  legs plus the annular sector theta / (sigma W ln(r_o / r_i)) (0.2 %);
* R equals that of the same strip built from its 3D centre-line (``geometry.busbars``
  with a 3D path and ``bend_radii``), within 0.5 %.
"""

from __future__ import annotations

import math

import ezdxf
import gmsh
import pytest
from test_holm import SIGMA_CU, conduction_solve

from busbarfem.case.geometry import Busbar, Geometry, MeshOptions, Terminals
from busbarfem.geometry import generate_model
from busbarfem.geometry.inspect import mesh_measure

L, W, T, R_I = 0.100, 0.010, 0.001, 0.003
THETA = math.pi / 2
BA = THETA * (R_I + 0.5 * T)  # bend allowance at K = 0.5
OPTS = dict(size=0.004, elements_through_thickness=1, thin_aspect=3.0, curvature_elements=24, order=1)


def _strip_dxf(path) -> None:
    doc = ezdxf.new()
    doc.header["$INSUNITS"] = 4  # mm
    doc.modelspace().add_lwpolyline([(0, 0), (100, 0), (100, 10), (0, 10)], close=True)
    doc.saveas(path)


def _solve(geometry: Geometry) -> dict:
    gmsh.initialize()
    try:
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.model.add("flatbend")
        info = generate_model(geometry, MeshOptions(**OPTS))
        res = conduction_solve({"busbar_1": SIGMA_CU})
        res["volume"] = mesh_measure("busbar_1")
        res["info"] = info
    finally:
        gmsh.finalize()
    return res


def test_dxf_strip_bent_along_a_line(tmp_path):
    _strip_dxf(tmp_path / "strip.dxf")
    plate = {"file": str(tmp_path / "strip.dxf"), "thickness": T,
             "bends": [{"line": [[0.05, 0.0], [0.05, 0.01]], "angle": 90, "radius": R_I}],
             "faces": {"start": [0.0, 0.005], "end": [0.1, 0.005]}}
    bent = _solve(Geometry.model_validate({"plates": [plate], "terminals": {"positive": "busbar_1.start",
                                                                              "negative": "busbar_1.end"}}))
    info = bent["info"]
    assert info.volumes["busbar_1"] == pytest.approx(L * W * T, rel=1e-12)
    assert bent["volume"] == pytest.approx(L * W * T, rel=1e-3)
    bend = info.parameters["builders"]["plates"]["busbar_1"]["bends"][0]
    assert bend["allowance_m"] == pytest.approx(BA, rel=1e-12) and bend["length_m"] == pytest.approx(W)

    R = 1 / bent["G"]
    R_dev = L / (SIGMA_CU * W * T)
    legs = L - BA
    R_exact = legs / (SIGMA_CU * W * T) + THETA / (SIGMA_CU * W * math.log((R_I + T) / R_I))
    # the same strip from its centre-line: legs of (L - BA) / 2, centre-line radius r_i + T / 2
    rc = R_I + T / 2
    a = legs / 2 + rc
    bar = Busbar(path=[(0, 0, 0), (a, 0, 0), (a, 0, a)], width=W, thickness=T, bend_radii=[R_I])
    line = _solve(Geometry(busbars=[bar], terminals=Terminals(positive="busbar_1.start",
                                                              negative="busbar_1.end")))
    R_line = 1 / line["G"]
    print(f"flat-pattern bend: R = {R * 1e6:.4f} uOhm, developed {R_dev * 1e6:.4f} ({R / R_dev - 1:+.3%}), "
          f"exact {R_exact * 1e6:.4f} ({R / R_exact - 1:+.3%}), centre-line {R_line * 1e6:.4f} "
          f"({R / R_line - 1:+.3%}); volume {bent['volume'] / (L * W * T) - 1:+.2e}")
    assert abs(R / R_dev - 1) < 0.005
    assert abs(R / R_exact - 1) < 0.002
    assert abs(R / R_line - 1) < 0.005
