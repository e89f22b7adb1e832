"""Tabs, weld nuggets, via arrays, U/Z paths and holes: names, volumes, conformity."""

from __future__ import annotations

import gmsh
import pytest
from pydantic import ValidationError

from busbarfem.case.geometry import (
    Busbar, Geometry, Hole, MeshOptions, Pattern, Tab, Terminals, ViaArray, Weld,
)
from busbarfem.errors import CaseError
from busbarfem.geometry import generate_model
from busbarfem.geometry.inspect import mesh_measure, physical_names, shared_facets


def joint_case(weld_center=(0.005, -0.003)) -> Geometry:
    """A tab welded under busbar 1; busbar 2 laminated on top, joined by 4 vias."""
    return Geometry(
        busbars=[Busbar(path=[(0, 0), (0.04, 0)], width=0.012, thickness=0.0015),
                 Busbar(path=[(0.02, 0), (0.06, 0)], width=0.012, thickness=0.0015, z0=0.002)],
        tabs=[Tab(path=[(0.005, 0), (0.005, -0.02)], width=0.006, thickness=0.0004,
                  z0=-0.0005, stage=1, parallel=2)],
        welds=[Weld(tab=1, busbar=1, radius=0.0008, depth=0.0005, material="weld_bad",
                    pattern=Pattern(center=weld_center, count=2, pitch=0.003, angle=90))],
        vias=[ViaArray(busbars=(1, 2), radius=0.001,
                       pattern=Pattern(center=(0.03, 0), count=4, pitch=0.004, layout="grid",
                                       columns=2))],
        terminals=Terminals(positive="tab_1.end", negative="busbar_2.end"),
    )


def test_weld_and_via_joint(gmsh_session):
    info = generate_model(joint_case(), MeshOptions(elements_through_thickness=1))
    vols = {"busbar_1", "busbar_2", "tab_pos_1_2", "weld_1", "weld_2",
            "via_1", "via_2", "via_3", "via_4"}
    assert set(physical_names(3)) == vols
    for name in vols:
        assert mesh_measure(name) == pytest.approx(info.volumes[name], rel=0.01), name
    assert info.regions["weld_1"].material == "weld_bad"
    assert info.regions["tab_pos_1_2"].polarity == "pos"
    assert info.regions["tab_pos_1_2"].parallel == 2
    for w in ("weld_1", "weld_2"):
        assert shared_facets(w, "tab_pos_1_2") > 10
        assert shared_facets(w, "busbar_1") > 10
    for v in ("via_1", "via_4"):
        assert shared_facets(v, "busbar_1") > 10 and shared_facets(v, "busbar_2") > 10
    # the layers and tab are separated by gaps: current passes only through joints
    assert shared_facets("busbar_1", "busbar_2") == 0
    assert shared_facets("busbar_1", "tab_pos_1_2") == 0


def test_nugget_outside_host_is_an_error(gmsh_session):
    with pytest.raises(CaseError, match="tab_pos_1_2"):
        generate_model(joint_case(weld_center=(0.008, -0.003)), MeshOptions(size=0.01))


@pytest.mark.parametrize("path", [
    [(0, 0), (0.03, 0), (0.03, 0.03), (0, 0.03)],           # U
    [(0, 0), (0.03, 0), (0.03, 0.03), (0.06, 0.03)],        # Z
    [(0, 0), (0.02, 0.01), (0.05, -0.01), (0.07, 0.0)],     # arbitrary angles
])
@pytest.mark.parametrize("fillet", [0.0, 0.003])
def test_multi_bend_paths(gmsh_session, path, fillet):
    bar = Busbar(path=path, width=0.008, thickness=0.002, fillet_radius=fillet,
                 holes=[Hole(center=((path[0][0] + path[1][0]) / 2, (path[0][1] + path[1][1]) / 2),
                       radius=0.002)])
    g = Geometry(busbars=[bar], terminals=Terminals(positive="busbar_1.start",
                                                    negative="busbar_1.end"))
    info = generate_model(g, MeshOptions(size=0.004, elements_through_thickness=1))
    assert mesh_measure("busbar_1") == pytest.approx(info.volumes["busbar_1"], rel=0.01)
    assert mesh_measure("terminal_pos") == pytest.approx(0.008 * 0.002, rel=1e-6)
    assert mesh_measure("terminal_neg") == pytest.approx(0.008 * 0.002, rel=1e-6)


def test_reference_errors():
    with pytest.raises(ValidationError, match="only 1 tab"):
        Geometry(busbars=[Busbar(path=[(0, 0), (1, 0)], width=0.1, thickness=0.01)],
                 tabs=[Tab(path=[(0, 0), (0, 1)], width=0.1, thickness=0.001)],
                 welds=[Weld(tab=2, radius=0.001, depth=0.001, pattern=Pattern(center=(0, 0)))])
    with pytest.raises(ValidationError, match="pitch"):
        Pattern(center=(0, 0), count=3)


def test_auto_mesher_removes_thin_sheet_slivers(gmsh_session):
    """A 0.2 mm tab welded to a busbar: Delaunay leaves near-flat tets (all four nodes on the
    tab's two faces) that its optimiser cannot remove; ``algorithm: auto`` re-meshes that
    volume alone with HXT, keeping the interfaces conforming (volumes exact, shared facets)."""
    from helpers import EXAMPLES

    from busbarfem.case.loader import load_case

    case, _ = load_case(EXAMPLES / "weld_nuggets.yaml", ["mesh.cache=false"])
    info = generate_model(case.geometry, case.mesh)
    alg = info.parameters["algorithm"]
    assert alg["requested"] == "auto" and alg["used"] == "delaunay+hxt" and alg["remeshed_volumes"] == 1
    assert alg["delaunay_min_dihedral_deg"] < 0.1      # the slivers are real (pinned gmsh)
    q = info.parameters["quality"]
    assert q["min_dihedral_deg"] > 5.0 and q["max_aspect"] < 20.0
    assert alg["hxt_min_dihedral_deg"] >= q["min_dihedral_deg"]
    for name in ("busbar_1", "tab_pos_1_1", "weld_1", "weld_2"):
        assert mesh_measure(name) == pytest.approx(info.volumes[name], rel=0.01), name
    # conforming: the re-meshed tab shares every facet with its welds (a gap would leave none)
    assert shared_facets("tab_pos_1_1", "weld_1") > 10


def test_explicit_mesher_is_used_as_given(gmsh_session):
    info = generate_model(joint_case(), MeshOptions(elements_through_thickness=1, algorithm="delaunay", cache=False))
    assert info.parameters["algorithm"] == {"requested": "delaunay", "used": "delaunay"}
