"""nSmP module builder: names, stage/field tags, PCU plate topology, volumes, conformity."""

from __future__ import annotations

import gmsh
import pytest
from pydantic import ValidationError

from busbarfem import naming
from busbarfem.case.geometry import CylindricalCell, Geometry, MeshOptions, Module
from busbarfem.geometry import generate_model
from busbarfem.geometry.inspect import mesh_measure, physical_names, shared_facets

SMALL_CELL = CylindricalCell(preset="custom", radius=0.006, height=0.02)
COARSE = MeshOptions(size=0.005, curvature_elements=24)


def test_2s2p_two_sided(gmsh_session):
    info = generate_model(Geometry(module=Module(series=2, parallel=2, cell=SMALL_CELL)), COARSE)
    names = set(physical_names())
    cells = {naming.cell(s, p) for s in (1, 2) for p in (1, 2)}
    tabs = {naming.tab(pol, s, p) for pol in ("pos", "neg") for s in (1, 2) for p in (1, 2)}
    assert cells | tabs | {"terminal_pos", "terminal_neg", "cold_plate"} <= names
    # 1 inter-stage plate (cross-connected) + 2 terminal plates; 1 nugget per terminal
    assert {"busbar_1", "busbar_2", "busbar_3"} <= names and "busbar_4" not in names
    assert {f"weld_{k}" for k in range(1, 9)} <= names
    for s in (1, 2):
        for p in (1, 2):
            c = info.regions[naming.cell(s, p)]
            assert (c.kind, c.field, c.stage, c.parallel) == ("cell", None, s, p)
            assert info.regions[naming.tab("pos", s, p)].field == naming.positive_field(s)
            assert info.regions[naming.tab("neg", s, p)].field == naming.negative_field(s)
            assert shared_facets(naming.cell(s, p), naming.tab("pos", s, p)) > 5
            assert shared_facets(naming.cell(s, p), naming.tab("neg", s, p)) > 5
    # the plate joining stage 1 (+) to stage 2 (-) carries phi+ of stage 1 = phi- of stage 2
    assert naming.positive_field(1) == naming.negative_field(2) == info.regions["busbar_1"].field
    assert info.regions["busbar_2"].field == naming.negative_field(1)  # negative terminal plate
    assert info.regions["busbar_3"].field == naming.positive_field(2)
    assert info.regions["terminal_pos"].field == naming.positive_field(2)
    for name in info.volume_names():
        assert mesh_measure(name) == pytest.approx(info.volumes[name], rel=0.01), name
    # a terminal touches its plate only through the weld nugget
    assert shared_facets(naming.tab("pos", 1, 1), "busbar_1") == 0
    welds = [w for w in info.volume_names() if w.startswith("weld_")]
    assert any(shared_facets(w, "busbar_1") > 5 and shared_facets(w, naming.tab("pos", 1, 1)) > 5
               for w in welds)


@pytest.mark.parametrize(("pcu", "plates"), [(4, 3 + 2), (2, 2 + 1 + 2 + 2), (1, 2 + 2 + 2 + 2)])
def test_pcu_plate_topology(gmsh_session, pcu, plates):
    """4s2p: PCU = 4 cross-connects at every junction; PCU = 1 only at the module ends."""
    mod = Module(series=4, parallel=2, parallel_connected_units=pcu, cell=SMALL_CELL,
                 busbars="top")
    info = generate_model(Geometry(module=mod), MeshOptions(size=0.008, curvature_elements=16))
    assert info.parameters["builders"]["module"]["pcu"] == pcu
    assert len(info.parameters["builders"]["module"]["plates"]) == plates


def test_pcu_must_divide_series():
    with pytest.raises(ValidationError, match="must divide"):
        Module(series=4, parallel=2, parallel_connected_units=3)
