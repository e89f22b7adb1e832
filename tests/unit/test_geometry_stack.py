"""Prismatic and pouch nSmP stacks: names, stage/field tags, volumes, conformity."""

from __future__ import annotations

import gmsh
import pytest
from pydantic import ValidationError

from busbarfem import naming
from busbarfem.case.geometry import Geometry, MeshOptions, Module, PouchCell, PrismaticCell
from busbarfem.geometry import generate_model
from busbarfem.geometry.inspect import mesh_measure, physical_names, shared_facets

SMALL_POUCH = {"type": "pouch", "width": 0.04, "height": 0.06, "thickness": 0.006,
               "tab_width": 0.012}
SMALL_PRISMATIC = {"type": "prismatic", "width": 0.05, "depth": 0.012, "height": 0.04,
                   "terminal_radius": 0.004}


def _check_tags(info, n: int, m: int) -> None:
    for s in range(1, n + 1):
        for p in range(1, m + 1):
            c = info.regions[naming.cell(s, p)]
            assert (c.kind, c.field, c.stage, c.parallel) == ("cell", None, s, p)
            for pol, fld in (("pos", naming.positive_field(s)), ("neg", naming.negative_field(s))):
                t = info.regions[naming.tab(pol, s, p)]
                assert (t.field, t.stage, t.parallel, t.polarity) == (fld, s, p, pol)


def test_pouch_2s2p(gmsh_session):
    mod = Module(series=2, parallel=2, cell=SMALL_POUCH)
    info = generate_model(Geometry(module=mod), MeshOptions(size=0.006))
    names = set(physical_names())
    cells = {naming.cell(s, p) for s in (1, 2) for p in (1, 2)}
    tabs = {naming.tab(pol, s, p) for pol in ("pos", "neg") for s in (1, 2) for p in (1, 2)}
    plates = {"busbar_1", "busbar_2", "busbar_3"}  # one junction + two terminal plates
    assert names == cells | tabs | plates | {"terminal_pos", "terminal_neg", "cold_plate"}
    _check_tags(info, 2, 2)
    assert info.regions["busbar_1"].field == naming.positive_field(1) == naming.negative_field(2)
    assert info.regions["busbar_2"].field == naming.negative_field(1)
    assert info.regions["busbar_3"].field == naming.positive_field(2)
    # analytic volumes: bodies, tabs through their slots, plates minus the slots
    t, w, h = 0.006, 0.04, 0.06
    assert info.volumes["cell_1_1"] == pytest.approx(t * w * h, rel=1e-12)
    assert info.volumes["tab_pos_1_1"] == pytest.approx(0.0004 * 0.012 * (0.01 + 0.002), rel=1e-12)
    for name in info.volume_names():
        assert mesh_measure(name) == pytest.approx(info.volumes[name], rel=0.01), name
    # conformity: every tab shares facets with its cell and its plate; + of 1 and - of 2 share a plate
    for s in (1, 2):
        for p in (1, 2):
            for pol in ("pos", "neg"):
                assert shared_facets(naming.cell(s, p), naming.tab(pol, s, p)) >= 2
    for p in (1, 2):
        assert shared_facets(naming.tab("pos", 1, p), "busbar_1") > 20
        assert shared_facets(naming.tab("neg", 2, p), "busbar_1") > 20
        assert shared_facets(naming.tab("neg", 1, p), "busbar_2") > 20
    assert shared_facets("cell_1_1", "cell_1_2") == 0  # cells must not touch
    assert mesh_measure("cold_plate") == pytest.approx(4 * t * w, rel=1e-9)
    assert mesh_measure("terminal_pos") == pytest.approx(mesh_measure("terminal_neg"), rel=1e-9)


def test_prismatic_2s1p(gmsh_session):
    mod = Module(series=2, parallel=1, cell=SMALL_PRISMATIC)
    info = generate_model(Geometry(module=mod), MeshOptions(size=0.006))
    names = set(physical_names())
    assert {"cell_1_1", "cell_2_1", "busbar_1", "busbar_2", "busbar_3", "terminal_pos",
            "terminal_neg", "cold_plate"} <= names
    assert {f"weld_{k}" for k in range(1, 5)} <= names and "weld_5" not in names
    _check_tags(info, 2, 1)
    assert info.regions["tab_pos_1_1"].material == "aluminium"
    assert info.regions["tab_neg_1_1"].material == "copper"
    assert info.volumes["cell_1_1"] == pytest.approx(0.05 * 0.012 * 0.04, rel=1e-12)
    for name in info.volume_names():
        assert mesh_measure(name) == pytest.approx(info.volumes[name], rel=0.01), name
    for s in (1, 2):
        for pol in ("pos", "neg"):
            assert shared_facets(naming.cell(s, 1), naming.tab(pol, s, 1)) > 20
    # posts reach the plates only through the nuggets
    assert shared_facets("tab_pos_1_1", "busbar_1") == 0
    welds = [w for w in info.volume_names() if w.startswith("weld_")]
    assert any(shared_facets(w, "busbar_1") > 5 and shared_facets(w, "tab_pos_1_1") > 5
               for w in welds)
    assert any(shared_facets(w, "busbar_1") > 5 and shared_facets(w, "tab_neg_2_1") > 5
               for w in welds)
    assert mesh_measure("cold_plate") == pytest.approx(2 * 0.05 * 0.012, rel=1e-9)


def test_lying_pouch_opposite_tabs(gmsh_session):
    cell = SMALL_POUCH | {"orientation": "lying", "tabs": "opposite"}
    mod = Module(series=3, parallel=1, cell=cell)
    info = generate_model(Geometry(module=mod), MeshOptions(size=0.008))
    _check_tags(info, 3, 1)
    assert info.parameters["builders"]["module"]["stacking_axis"] == "z"
    # plates alternate: junction 1 at the + edge (x > height), junction 2 at the - edge (x < 0)
    for name in info.volume_names():
        assert mesh_measure(name) == pytest.approx(info.volumes[name], rel=0.01), name
    assert shared_facets("tab_pos_1_1", "busbar_1") > 10
    assert shared_facets("tab_neg_3_1", "busbar_2") > 10
    assert mesh_measure("cold_plate") == pytest.approx(0.04 * 0.06, rel=1e-9)


@pytest.mark.slow
def test_default_pouch_4s2p_size(gmsh_session):
    info = generate_model(Geometry(module=Module(series=4, parallel=2, cell={"type": "pouch"})),
                          MeshOptions())
    assert info.parameters["quality"]["elements"] < 100_000


def test_stack_validation():
    with pytest.raises(ValidationError, match="cannot keep"):
        Module(series=4, parallel=2, parallel_connected_units=2, cell={"type": "pouch"})
    with pytest.raises(ValidationError, match="must exceed the cell thickness"):
        Module(series=2, parallel=1, pitch=(0.008, 0.0), cell={"type": "pouch"})
    with pytest.raises(ValidationError, match="overlap"):
        PouchCell(type="pouch", width=0.1, tab_width=0.03, tab_offset=0.01)
    with pytest.raises(ValidationError, match="does not fit"):
        PrismaticCell(type="prismatic", depth=0.01, terminal_radius=0.006)
    with pytest.raises(ValidationError, match="does not match any of the expected tags"):
        Module(series=1, parallel=1, cell={"type": "coin"})
    # omitting type keeps the cylindrical default (older case files)
    assert Module.model_validate({"series": 1, "parallel": 1, "cell": {"preset": "18650"}}).cell.type \
        == "cylindrical"
