"""STEP import by rules and external meshes through gmsh/meshio: regions, volumes, errors."""

from __future__ import annotations

import math
import re
from pathlib import Path

import gmsh
import meshio
import numpy as np
import pytest

from busbarfem.case.geometry import Busbar, Bolt, Geometry, MeshOptions, Terminals
from busbarfem.errors import CaseError
from busbarfem.geometry import generate_model
from busbarfem.geometry.inspect import mesh_measure, physical_names, shared_facets


def write_step(path: Path) -> Path:
    """A bar, a lug and a stud through the bar, exported by gmsh with product names."""
    gmsh.model.add("cad")
    occ = gmsh.model.occ
    occ.addBox(0, 0, 0, 0.1, 0.01, 0.002)
    occ.addBox(0.1, 0, 0, 0.05, 0.01, 0.002)
    occ.addCylinder(0.02, 0.005, 0.0, 0, 0, 0.005, 0.002)
    occ.synchronize()
    gmsh.write(str(path))
    gmsh.model.remove()
    gmsh.model.setCurrent("test")
    # gmsh names the products after the translator; give them CAD-like names
    text = path.read_text()
    for k, name in ((1, "BUSBAR"), (2, "LUG"), (3, "STUD M4")):
        text = re.sub(rf"translator [\d.]+ \d+\.{k}'", f"{name}'", text)
    path.write_text(text)
    return path


def step_geometry(tmp_path: Path, rules: list[dict], **extra) -> Geometry:
    return Geometry.model_validate(
        {"step": {"file": "part.step", "unit": "m", "rules": rules, **extra}},
        context={"case_dir": tmp_path})


RULES = [
    {"match": {"name": "STUD"}, "region": "bolt_1", "material": "steel"},
    {"match": {"bbox": [0.0999, -1, -1, 1, 1, 1]}, "region": "lug", "material": "aluminium"},
    {"match": {"name": "BUSBAR"}, "region": "busbar_1", "material": "copper"},
]
TERMINALS = {"positive": {"bbox": [-0.001, -1, -1, 1e-4, 1, 1]},
             "negative": {"bbox": [0.1499, -1, -1, 1, 1, 1]}}


def test_step_import(gmsh_session, tmp_path):
    write_step(tmp_path / "part.step")
    info = generate_model(step_geometry(tmp_path, RULES, terminals=TERMINALS), MeshOptions())
    assert set(physical_names()) == {"bolt_1", "lug", "busbar_1", "terminal_pos", "terminal_neg"}
    assert info.parameters["builders"]["step"]["solids"] == 3
    r_stud = 0.002
    expect = {"bolt_1": math.pi * r_stud**2 * 0.005, "lug": 0.05 * 0.01 * 0.002,
              "busbar_1": 0.1 * 0.01 * 0.002 - math.pi * r_stud**2 * 0.002}
    for name, vol in expect.items():
        assert info.volumes[name] == pytest.approx(vol, rel=1e-6)  # CAD volumes
        assert mesh_measure(name) == pytest.approx(vol, rel=0.01), name
    assert info.regions["lug"].material == "aluminium"
    assert shared_facets("bolt_1", "busbar_1") > 20 and shared_facets("lug", "busbar_1") > 5
    assert mesh_measure("terminal_pos") == pytest.approx(0.01 * 0.002, rel=1e-9)
    assert info.regions["terminal_neg"].polarity == "neg"


def test_step_units_adjacency_and_fields(gmsh_session, tmp_path):
    """unit mm scales by 1e-3; adjacent_to picks the lug; fields follow a tab's polarity."""
    write_step(tmp_path / "part.step")
    rules = [{"match": {"name": "STUD"}, "region": "bolt_1", "material": "steel"},
             {"match": {"name": "BUSBAR"}, "region": "tab_pos_2_1", "material": "nickel",
              "polarity": "pos", "stage": 2, "parallel": 1},
             {"match": {"adjacent_to": "tab_pos_2_1"}, "region": "lug", "material": "copper"}]
    g = Geometry.model_validate({"step": {"file": "part.step", "unit": "mm", "rules": rules}},
                                context={"case_dir": tmp_path})
    # a 0.15 mm model: the absolute 4 mm refinement distance of the (STEP-default) interface
    # refinement would refine all of it, which is not what this test is about
    info = generate_model(g, MeshOptions(size=4e-6, order=1, refine={"interfaces": False}))
    assert mesh_measure("lug") == pytest.approx(0.05 * 0.01 * 0.002 * 1e-9, rel=0.01)
    # stage 2 positive = field 2; the stud and the lug touch the tab, so they carry it too
    assert {info.regions[n].field for n in ("tab_pos_2_1", "bolt_1", "lug")} == {2}


def test_step_unmatched_solids(gmsh_session, tmp_path):
    write_step(tmp_path / "part.step")
    with pytest.raises(CaseError, match=r"1 STEP solid\(s\) match no rule") as err:
        generate_model(step_geometry(tmp_path, RULES[:1] + RULES[2:]), MeshOptions())
    assert "LUG bbox [0.09999" in str(err.value)


def test_step_not_a_step_file(gmsh_session, tmp_path):
    (tmp_path / "part.step").write_text("solid ascii stl\nendsolid\n")
    with pytest.raises(CaseError, match="is not a STEP file"):
        generate_model(step_geometry(tmp_path, RULES), MeshOptions())


def test_step_rules_validation(tmp_path):
    with pytest.raises(ValueError, match="exactly one of"):
        step_geometry(tmp_path, [{"match": {}, "region": "a", "material": "copper"}])
    with pytest.raises(ValueError, match="no rule makes region"):
        step_geometry(tmp_path, [{"match": {"adjacent_to": "x"}, "region": "a", "material": "copper"}])
    with pytest.raises(ValueError, match="needs stage and parallel"):
        step_geometry(tmp_path, [{"match": {"name": "."}, "region": "cell_1_1", "kind": "cell"}])


# --------------------------------------------------------------------------- meshes
def write_meshes(tmp_path: Path) -> tuple[dict, float, float]:
    """A bar with a bolt meshed by gmsh, written as .msh, .vtu, .med and .inp."""
    g = Geometry(busbars=[Busbar(path=[(0, 0), (0.05, 0)], width=0.01, thickness=0.002)],
                 bolts=[Bolt(center=(0.04, 0), radius=0.002, height=0.003)],
                 terminals=Terminals(positive="busbar_1.start", negative="bolt_1.top"))
    info = generate_model(g, MeshOptions(size=0.004, order=1))  # 4-node tets for meshio's writers
    v_bar, v_bolt = mesh_measure("busbar_1"), mesh_measure("bolt_1")
    gmsh.option.setNumber("Mesh.SaveAll", 0)
    gmsh.write(str(tmp_path / "m.msh"))
    gmsh.model.remove()
    gmsh.model.add("test")
    m = meshio.read(tmp_path / "m.msh")
    ids = m.cell_data["gmsh:physical"]
    files = {"msh": tmp_path / "m.msh"}
    meshio.write(tmp_path / "m.vtu", meshio.Mesh(m.points, m.cells, cell_data={"gmsh:physical": ids}))
    files["vtu"] = tmp_path / "m.vtu"
    # one block per cell type, named sets (what Salome/Abaqus files carry)
    blocks, sets = [], {}
    for ctype in ("triangle", "tetra"):
        conn = [c.data for c in m.cells if c.type == ctype]
        tags = np.concatenate([t for c, t in zip(m.cells, ids, strict=True) if c.type == ctype])
        blocks.append((ctype, np.concatenate(conn)))
        for name, (tag, dim) in m.field_data.items():
            if (dim == 3) == (ctype == "tetra"):
                sets.setdefault(name, [np.zeros(0, int), np.zeros(0, int)])
                sets[name][len(blocks) - 1] = np.nonzero(tags == tag)[0]
    meshio.write(tmp_path / "m.inp", meshio.Mesh(m.points, blocks, cell_sets=sets))
    files["inp"] = tmp_path / "m.inp"
    # MED: element families (negative ids, as Salome writes them) naming their groups
    fam = [np.concatenate([-t for c, t in zip(m.cells, ids, strict=True) if c.type == ctype])
           for ctype in ("triangle", "tetra")]
    med = meshio.Mesh(m.points, blocks, cell_data={"cell_tags": fam})
    med.cell_tags = {-int(tag): [name] for name, (tag, _) in m.field_data.items()}
    meshio.write(tmp_path / "m.med", med)
    files["med"] = tmp_path / "m.med"
    assert info.regions["bolt_1"].material == "steel"
    return files, v_bar, v_bolt


REGIONS = {"busbar_1": {"material": "copper"}, "bolt_1": {"material": "steel"}}


@pytest.mark.parametrize("ext", ["msh", "vtu", "med", "inp"])
def test_mesh_file(gmsh_session, tmp_path, ext):
    files, v_bar, v_bolt = write_meshes(tmp_path)
    spec = {"file": files[ext].name, "regions": REGIONS}
    if ext == "vtu":  # numbers only: map them to names
        spec["names"] = {"1": "busbar_1", "2": "bolt_1", "3": "terminal_pos", "4": "terminal_neg"}
    g = Geometry.model_validate({"mesh_file": spec}, context={"case_dir": tmp_path})
    info = generate_model(g, MeshOptions())
    assert set(physical_names()) == {"busbar_1", "bolt_1", "terminal_pos", "terminal_neg"}
    assert mesh_measure("busbar_1") == pytest.approx(v_bar, rel=1e-9)
    assert mesh_measure("bolt_1") == pytest.approx(v_bolt, rel=1e-9)
    assert mesh_measure("terminal_pos") == pytest.approx(0.01 * 0.002, rel=1e-9)
    assert shared_facets("busbar_1", "bolt_1") > 20
    assert info.regions["bolt_1"].material == "steel" and info.regions["bolt_1"].field == 1
    assert info.regions["terminal_neg"].polarity == "neg"


def test_mesh_file_to_dolfinx(gmsh_session, tmp_path):
    import dolfinx_solver  # noqa: F401  (must precede dolfinx/mpi4py)
    from dolfinx.io.gmsh import model_to_mesh
    from mpi4py import MPI

    files, _, _ = write_meshes(tmp_path)
    g = Geometry.model_validate({"mesh_file": {"file": "m.med", "regions": REGIONS}},
                                context={"case_dir": tmp_path})
    generate_model(g, MeshOptions())
    data = model_to_mesh(gmsh.model, MPI.COMM_SELF, 0)
    assert {"busbar_1", "bolt_1", "terminal_pos", "terminal_neg"} <= set(data.physical_groups)


def test_mesh_file_errors(gmsh_session, tmp_path):
    files, _, _ = write_meshes(tmp_path)
    (tmp_path / "bad.vtu").write_text("this is not a mesh")
    g = Geometry.model_validate({"mesh_file": {"file": "bad.vtu", "regions": REGIONS}},
                                context={"case_dir": tmp_path})
    with pytest.raises(CaseError, match="could not read mesh file bad.vtu"):
        generate_model(g, MeshOptions())
    g = Geometry.model_validate({"mesh_file": {"file": "m.msh", "regions": REGIONS | {"x": {"material": "copper"}}}},
                                context={"case_dir": tmp_path})
    with pytest.raises(CaseError, match=r"regions \['x'\] are not volume regions"):
        generate_model(g, MeshOptions())
    gmsh.model.remove()
    gmsh.model.add("again")
    g = Geometry.model_validate({"mesh_file": {"file": "m.msh", "regions": {"bolt_1": {"material": "steel"}}}},
                                context={"case_dir": tmp_path})
    with pytest.raises(CaseError, match="busbar_1"):
        generate_model(g, MeshOptions())
    with pytest.raises(ValueError, match="mesh_file replaces"):
        Geometry.model_validate({"mesh_file": {"file": "m.msh", "regions": REGIONS},
                                 "busbars": [{"path": [[0, 0], [1, 0]], "width": 1, "thickness": 1}]})


def test_step_wrong_unit_names_the_bounding_box_and_unit(gmsh_session, tmp_path):
    """The file's numbers are metres (gmsh export); read as 'mm' everything is 1000x
    smaller, the bbox rule for the lug matches nothing, and the message says so."""
    write_step(tmp_path / "part.step")
    g = Geometry.model_validate({"step": {"file": "part.step", "unit": "mm", "rules": RULES}},
                                context={"case_dir": tmp_path})
    with pytest.raises(CaseError, match=r"match no rule") as err:
        generate_model(g, MeshOptions(size=4e-6))
    text = str(err.value)
    span = [float(v) for v in re.search(r"span \[([^\]]+)\] m", text).group(1).split(",")]
    assert span == pytest.approx([0, 0, 0, 0.15e-3, 0.01e-3, 0.005e-3], abs=2e-7)  # OCC pads 1e-7
    assert "read with geometry.step.unit: mm" in text
    assert "with geometry.step.unit: m the bbox rules would match 1 of them" in text


# --------------------------------------------------------------------------- refinement
def _tets(name: str | None = None) -> int:
    """Tetrahedra in the current model (or in volume region ``name``)."""
    if name is None:
        return sum(len(t) for t in gmsh.model.mesh.getElements(3)[1])
    tag = next(t for d, t in gmsh.model.getPhysicalGroups(3) if gmsh.model.getPhysicalName(d, t) == name)
    return sum(len(t) for v in gmsh.model.getEntitiesForPhysicalGroup(3, tag)
               for t in gmsh.model.mesh.getElements(3, int(v))[1])


def _fresh_model():
    gmsh.model.remove()
    gmsh.model.add("test")


def test_step_refinement_interfaces_terminals_regions(gmsh_session, tmp_path):
    """mesh.refine works on STEP geometry: interface edges (the default there), terminal
    edges and whole regions each add elements where they say, and are reported."""
    write_step(tmp_path / "part.step")
    geo = step_geometry(tmp_path, RULES, terminals=TERMINALS)
    off = {"interfaces": False}
    generate_model(geo, MeshOptions(order=1, refine=off))
    base, base_bolt = _tets(), _tets("bolt_1")
    _fresh_model()
    info = generate_model(geo, MeshOptions(order=1))
    assert any(k.startswith("interfaces@") for k in info.parameters["refinement"])
    assert _tets() > 1.1 * base  # the stud's and the lug's interface edges are refined
    _fresh_model()
    info = generate_model(geo, MeshOptions(order=1, refine={**off, "terminals": True}))
    assert any(k.startswith("terminals@") for k in info.parameters["refinement"]) and _tets() > base
    _fresh_model()
    info = generate_model(geo, MeshOptions(order=1, refine={**off, "regions": ["bolt_1"]}))
    assert info.parameters["refinement"]["region:bolt_1"]["volumes"] >= 1
    assert _tets("bolt_1") > 3 * base_bolt  # 0.3 x the size: ~30x the elements in the stud
    _fresh_model()
    bar = Geometry(busbars=[Busbar(path=[(0, 0), (0.05, 0)], width=0.01, thickness=0.002)],
                   terminals=Terminals(positive="busbar_1.start", negative="busbar_1.end"))
    with pytest.raises(CaseError, match="unknown region 'bolt_9'") as err:
        generate_model(bar, MeshOptions(order=1, refine={"regions": ["bolt_9"]}))
    assert err.value.key == "mesh.refine.regions.0" and "busbar_1" in str(err.value)


def test_refinement_that_would_do_nothing_is_an_error(tmp_path):
    """refine on an external mesh, or a builder-feature switch on STEP geometry: exit 2 with
    file, line and key (instead of being silently ignored)."""
    from busbarfem.case.loader import load_case
    from busbarfem.cli import main

    (tmp_path / "m.msh").write_text("")
    (tmp_path / "part.step").write_text("ISO-10303-21;\n")
    tail = ("load: {electrical_input_type: current, current_type: constant, current: 10.0}\n"
            "thermal: {boundaries: [{type: convection, regions: [exterior], h: 10.0}]}\n")
    mesh_case = tmp_path / "mesh.yaml"
    mesh_case.write_text("name: m\ngeometry:\n  mesh_file:\n    file: m.msh\n    regions: {bar: {material: copper}}\n"
                         "mesh:\n  refine:\n    size: 0.001\n" + tail)
    with pytest.raises(CaseError, match="does not apply to an external mesh") as err:
        load_case(mesh_case)
    assert (err.value.key, err.value.line) == ("mesh.refine.size", 8)
    step_case = tmp_path / "step.yaml"
    step_case.write_text("name: s\ngeometry:\n  step:\n    file: part.step\n    rules:\n"
                         "      - {match: {name: BAR}, region: bar, material: copper}\n"
                         "mesh:\n  refine: {bolts: true}\n" + tail)
    with pytest.raises(CaseError, match="imported from STEP, use interfaces") as err:
        load_case(step_case)
    assert err.value.key == "mesh.refine.bolts" and err.value.line == 8
    with pytest.raises(CaseError, match="unknown region 'bolt'") as err:
        load_case(step_case, ["mesh.refine={regions: [bolt]}"])
    assert err.value.key == "mesh.refine.regions.0" and err.value.choices == ["bar"]
    assert main(["validate", str(mesh_case), "-q"]) == 2
