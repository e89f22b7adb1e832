"""Names derived from the case (used by ``validate``) equal what the geometry builders make.

:func:`busbarfem.case.references.geometry_names` predicts region names and face
references without gmsh; here the builders create the real OCC solids (no fragment, no
mesh) and the two lists must agree exactly, for every bundled example and for module
layouts that exercise the plate and weld numbering (PCU, top-only plates, prismatic,
pouch, lying pouch, loose busbars and weld groups before the module).
"""

from __future__ import annotations

import pytest
import yaml
from helpers import EXAMPLES

from busbarfem.case.geometry import Geometry
from busbarfem.case.loader import load_case
from busbarfem.case.references import geometry_names
from busbarfem.geometry.model import build_assembly

SMALL_CYL = {"preset": "custom", "radius": 0.006, "height": 0.02}
TAB_BAR = {
    "busbars": [{"path": [[0, 0], [0.03, 0]], "width": 0.01, "thickness": 0.001}],
    "tabs": [{"path": [[0.005, 0], [0.02, 0]], "width": 0.006, "thickness": 0.0002, "z0": 0.0011,
              "polarity": "neg", "stage": 2, "parallel": 3}],
    "welds": [{"tab": 1, "busbar": 1, "radius": 0.0005, "depth": 0.0005,
               "pattern": {"center": [0.012, 0], "count": 3, "pitch": 0.0015}}],
}
LAYOUTS = {
    "cyl_pcu": {"module": {"series": 4, "parallel": 2, "parallel_connected_units": 2,
                           "cell": SMALL_CYL, "weld": {"count": 2}}},
    "cyl_top": {"module": {"series": 3, "parallel": 2, "busbars": "top", "cell": SMALL_CYL}},
    "cyl_after_parts": {**TAB_BAR, "module": {"series": 2, "parallel": 1, "cell": SMALL_CYL,
                                              "pitch": [0.02, 0.02]}},
    "prismatic": {"module": {"series": 3, "parallel": 2, "cell": {"type": "prismatic"},
                             "weld": {"count": 2, "pitch": 0.003}}},
    "pouch_opposite": {"module": {"series": 2, "parallel": 2,
                                  "cell": {"type": "pouch", "tabs": "opposite"}}},
    "pouch_lying": {"module": {"series": 2, "parallel": 1,
                               "cell": {"type": "pouch", "orientation": "lying"}}},
}


def built_names(gmsh_session, geometry: Geometry):
    """(volumes, face references, builder surfaces, cell bodies) of the real assembly."""
    asm = build_assembly(geometry)
    faces = {f for f in asm.faces if not f.startswith("step.")}
    cells = [n for n, p in asm.parts.items() if p.info.kind == "cell"]
    # contact layers are carved after fragmentation (geometry.contact.add_contacts)
    return list(asm.parts) + [c.name for c in geometry.contacts], faces, set(asm.surfaces), cells


def check_same(gmsh_session, geometry: Geometry) -> None:
    predicted = geometry_names(geometry)
    volumes, faces, surfaces, cells = built_names(gmsh_session, geometry)
    assert sorted(predicted.volumes) == sorted(volumes)
    assert set(predicted.faces) == faces and len(predicted.faces) == len(faces)
    assert surfaces <= set(predicted.surfaces)
    assert sorted(predicted.cells) == sorted(cells)


@pytest.mark.parametrize("path", [p for p in sorted(EXAMPLES.glob("*.yaml"))
                                  if "step" not in yaml.safe_load(p.read_text())["geometry"]],
                         ids=lambda p: p.name)
def test_example_names_match_the_builders(gmsh_session, path):
    case, _ = load_case(path)
    check_same(gmsh_session, case.geometry)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_module_layout_names_match_the_builders(gmsh_session, layout):
    check_same(gmsh_session, Geometry.model_validate(LAYOUTS[layout]))


def test_counts_of_a_known_layout():
    """4s2p, 2 PCUs: stages 1-2 and 3-4 keep strings apart (2 plates each), stage 2-3 is
    cross-connected (1 plate), plus 2 terminal plates; 16 terminals x 2 nuggets."""
    names = geometry_names(Geometry.model_validate(LAYOUTS["cyl_pcu"]))
    assert [v for v in names.volumes if v.startswith("busbar_")] == [f"busbar_{k}" for k in range(1, 8)]
    assert [v for v in names.volumes if v.startswith("weld_")] == [f"weld_{k}" for k in range(1, 33)]
    assert {"terminal_pos", "terminal_neg", "cold_plate"} <= set(names.surfaces)
