"""``generate_model``: case geometry -> fragmented, named, meshed gmsh model."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import gmsh

from busbarfem.case.geometry import Geometry, MeshOptions, Terminals
from busbarfem.errors import CaseError
from busbarfem.geometry import cache as mesh_cache
from busbarfem.geometry import instancing
from busbarfem.geometry.assembly import Assembly
from busbarfem.geometry.bend import add_bent_busbar
from busbarfem.geometry.coldplate import add_cooling, tag_cooling
from busbarfem.geometry.contact import add_contacts
from busbarfem.geometry.dxf import add_plate
from busbarfem.geometry.busbar import add_bolt, add_busbar
from busbarfem.geometry.importers import add_step, load_mesh_file
from busbarfem.geometry.joints import add_general_bolt, add_via_array, add_weld_group
from busbarfem.geometry.module import add_module
from busbarfem.geometry.quality import mesh_quality, volume_min_dihedral
from busbarfem.geometry.sizing import apply_size_fields
from busbarfem.naming import TERMINAL_NEG, TERMINAL_POS, GeometryInfo, RegionInfo
from busbarfem import naming


def input_files(geometry: Geometry) -> list[Path]:
    """Files whose content enters the model (STEP, external meshes) for the cache key."""
    files = []
    if geometry.step is not None and geometry.step.path().is_file():
        files.append(geometry.step.path())
    if geometry.mesh_file is not None and geometry.mesh_file.path().is_file():
        files.append(geometry.mesh_file.path())
    files += [p.path() for p in geometry.plates if p.path() is not None and p.path().is_file()]
    return files


def build_assembly(geometry: Geometry) -> Assembly:
    """Create all OCC solids and face references of ``geometry`` (no fragment yet).

    Every part records the case-file key of the entry that made it (``geometry.vias.0``),
    so a geometry error found later (overlap, insert sticking out) names file and line.
    """
    asm = Assembly()

    def keyed(key: str) -> None:
        for p in asm.parts.values():
            if p.key is None:
                p.key = key

    for i, bar in enumerate(geometry.busbars, start=1):
        region = RegionInfo(naming.busbar(i), 3, bar.material, "conductor", 1)
        if bar.needs_bend_builder():
            add_bent_busbar(asm, bar, region, key=f"geometry.busbars.{i - 1}")
        else:
            add_busbar(asm, bar, region)
        keyed(f"geometry.busbars.{i - 1}")
    for k, plate in enumerate(geometry.plates):
        i = len(geometry.busbars) + k + 1
        add_plate(asm, plate, RegionInfo(naming.busbar(i), 3, plate.material, "conductor", 1),
                  key=f"geometry.plates.{k}")
        keyed(f"geometry.plates.{k}")
    for i, tab in enumerate(geometry.tabs, start=1):
        name = naming.tab(tab.polarity, tab.stage, tab.parallel)
        add_busbar(asm, tab.as_busbar(), RegionInfo(name, 3, tab.material, "conductor", 1,
                                                    tab.stage, tab.parallel, tab.polarity),
                   aliases=(f"tab_{i}",))
        keyed(f"geometry.tabs.{i - 1}")
    for i, bolt in enumerate(geometry.bolts, start=1):
        host = geometry.busbars[bolt.busbar - 1] if bolt.busbar <= len(geometry.busbars) else None
        if bolt.is_plain() and host is not None and not host.needs_bend_builder():
            add_bolt(asm, bolt, host, RegionInfo(naming.bolt(i), 3, bolt.material, "conductor", 1))
        else:
            add_general_bolt(asm, bolt, [*geometry.busbars, *geometry.plates], i, 1, f"geometry.bolts.{i - 1}")
        keyed(f"geometry.bolts.{i - 1}")
    n_weld = 1
    for k, weld in enumerate(geometry.welds):
        tab = geometry.tabs[weld.tab - 1]
        tab_name = naming.tab(tab.polarity, tab.stage, tab.parallel)
        n_weld += len(add_weld_group(asm, weld, tab.as_busbar(), tab_name,
                                     geometry.busbars[weld.busbar - 1], naming.busbar(weld.busbar),
                                     n_weld, 1, f"geometry.welds.{k}"))
        keyed(f"geometry.welds.{k}")
    n_via = 1
    for k, vias in enumerate(geometry.vias):
        n_via += len(add_via_array(asm, vias, geometry.busbars, n_via, 1))
        keyed(f"geometry.vias.{k}")
    if geometry.step is not None:
        asm.summary["step"] = add_step(asm, geometry.step)
        keyed("geometry.step")
    if geometry.module is not None:
        asm.summary["module"] = add_module(asm, geometry.module, len(geometry.busbars) + len(geometry.plates) + 1,
                                       n_weld)
        keyed("geometry.module")
        rinfo = RegionInfo("cold_plate", 2, None, "surface", None)
        asm.surfaces["cold_plate"] = (rinfo, ["module.bottom"])
    return asm


def _add_terminals(asm: Assembly, geometry: Geometry) -> None:
    """Register terminal_pos / terminal_neg from the case's face references."""
    terminals = geometry.terminals
    if terminals is None and geometry.module is not None:
        terminals = Terminals(positive="module", negative="module")
    if terminals is None:
        return
    for name, side, pol in ((TERMINAL_POS, "positive", "pos"), (TERMINAL_NEG, "negative", "neg")):
        refs = []
        for k, ref in enumerate(terminals.refs(side)):
            if ref == "module" and geometry.module is not None:
                ref = "module.positive" if pol == "pos" else "module.negative"
            if ref not in asm.faces:
                key = f"geometry.terminals.{side}" + ("" if isinstance(getattr(terminals, side), str) else f".{k}")
                raise CaseError(f"unknown face reference {ref!r}", key=key, choices=sorted(asm.faces), bad=ref)
            refs.append(ref)
        sel = asm.faces[refs[0]]
        region = (sel[0] if isinstance(sel, list) else sel).region
        fld = asm.parts[region].info.field
        asm.surfaces[name] = (RegionInfo(name, 2, None, "surface", fld, polarity=pol), refs)


def _check_element_budget(mesh: MeshOptions) -> None:
    """Refuse a mesh that would obviously not fit (a typo in mesh.size, e.g. 1e-6 m).

    The estimate is the total volume over the volume of a regular tetrahedron of edge
    ``mesh.size``; refinement only adds to it, so this is a lower bound.
    """
    import math

    volume = sum(gmsh.model.occ.getMass(3, t) for _, t in gmsh.model.occ.getEntities(3))
    estimate = volume / (mesh.size**3 / (6.0 * math.sqrt(2.0)))
    if estimate > mesh.max_elements:
        raise CaseError(f"mesh.size = {mesh.size:g} m gives at least {estimate:.3g} tetrahedra for this "
                        f"{volume:.3g} m^3 geometry, above mesh.max_elements = {mesh.max_elements:g}; use a "
                        "larger size (or raise max_elements if you really mean it)", key="mesh.size")


SLIVER_DEG = 1.0  # below this minimum dihedral angle, "auto" tries HXT
_ALGORITHM_3D = {"delaunay": 1, "hxt": 10}


def _mesh_volumes(mesh: MeshOptions) -> dict:
    """Generate the 3D mesh with the requested algorithm; returns what was used and why.

    ``auto``: gmsh's Delaunay everywhere; its optimiser cannot remove the flat tets it
    leaves in thin sheets whose four nodes all lie on the two faces (0.0006 degrees in the
    0.2 mm tab of ``examples/weld_nuggets.yaml``). Every volume whose minimum dihedral angle
    is below :data:`SLIVER_DEG` is then re-meshed alone with HXT (its surface mesh, hence
    conformity with its neighbours, kept; 10 degrees in that tab), and the re-mesh is
    undone if it is not better.
    """
    requested = mesh.algorithm
    if requested == "auto" and mesh.threads > 1:
        requested = "hxt"  # the parallel mesher
    first = "delaunay" if requested == "auto" else requested
    gmsh.option.setNumber("Mesh.Algorithm3D", _ALGORITHM_3D[first])
    gmsh.model.mesh.generate(3)
    out = {"requested": mesh.algorithm, "used": first}
    if requested != "auto":
        return out
    before = volume_min_dihedral()
    bad = sorted(v for v, a in before.items() if a < SLIVER_DEG)
    if not bad:
        return out
    gmsh.model.mesh.clear([(3, v) for v in bad])
    gmsh.option.setNumber("Mesh.Algorithm3D", _ALGORITHM_3D["hxt"])
    gmsh.option.setNumber("Mesh.MeshOnlyEmpty", 1)
    gmsh.model.mesh.generate(3)
    gmsh.option.setNumber("Mesh.MeshOnlyEmpty", 0)
    after = volume_min_dihedral()
    q1, q2 = min(before[v] for v in bad), min(after.get(v, 0.0) for v in bad)
    out.update(delaunay_min_dihedral_deg=q1, hxt_min_dihedral_deg=q2, remeshed_volumes=len(bad),
               used="delaunay+hxt")
    if q2 <= q1:  # HXT no better: back to the all-Delaunay mesh (deterministic)
        gmsh.model.mesh.clear()
        gmsh.option.setNumber("Mesh.Algorithm3D", _ALGORITHM_3D["delaunay"])
        gmsh.model.mesh.generate(3)
        out["used"] = "delaunay"
    return out


#: ``mesh.order: auto`` gives a conductor-only model P2 elements up to this many P2 nodes
#: (unknowns per field), else P1. Measured on the examples (docs/theory.md, Discretisation):
#: on the default mesh of examples/busbar_l_bolted.yaml P2 (25k unknowns, 4 s of solves)
#: is 0.4 % in R and 0.25 K in T_max from P2 at half the size, P1 2.8 % and 1.45 K; on the
#: feature-refined weld and via examples (98k-190k P2 unknowns) P1 and P2 on the same mesh
#: differ by < 0.2 % in R and 0.2 K while P2 costs 4-5x the run time (30 s on one core).
AUTO_P2_MAX_DOFS = 50_000


def set_element_order(mesh: MeshOptions, info: GeometryInfo, curved: bool) -> dict:
    """Give the meshed model its element order (``mesh.order``: 1, 2 or ``auto``).

    The order is the geometry order of the mesh: order 2 makes 10-node tetrahedra (curved
    onto the CAD surfaces where there are some: ``curved``), and the solver uses
    Lagrange elements of the mesh's geometry degree. ``auto`` picks 2 for a model without
    cell bodies (a passive-conductor study) whose P2 mesh has at most
    :data:`AUTO_P2_MAX_DOFS` nodes, else 1.

    Returns:
        ``{"requested", "order", "reason"}`` for ``GeometryInfo.parameters``.
    """
    requested = mesh.order
    has_cells = any(r.kind == "cell" for r in info.regions.values() if r.dim == 3)
    if requested == "auto" and has_cells:
        order, reason = 1, "the model has cell bodies (P1)"
    elif requested == "auto":
        # P2 nodes = vertices + edges (one mid-edge node each), counted before curving
        gmsh.model.mesh.createEdges()
        nodes = len(gmsh.model.mesh.getNodes(-1, -1, False, False)[0]) + len(gmsh.model.mesh.getAllEdges()[0])
        if nodes <= AUTO_P2_MAX_DOFS:
            order, reason = 2, f"conductor-only model, {nodes} P2 nodes <= {AUTO_P2_MAX_DOFS}"
        else:
            order, reason = 1, f"conductor-only model but {nodes} P2 nodes > {AUTO_P2_MAX_DOFS} (P1)"
    else:
        order, reason = int(requested), "mesh.order"
    if order != 1 or any(gmsh.model.mesh.getElementProperties(t)[2] > 1
                         for t in gmsh.model.mesh.getElementTypes()):
        gmsh.model.mesh.setOrder(order)  # a no-op on a linear mesh, but a costly one (1 s at 0.7M tets)
    if order == 2 and curved and mesh.optimize:
        gmsh.model.mesh.optimize("HighOrder")
    return {"requested": requested, "order": order, "reason": reason}


def generate_model(
    geometry: Geometry,
    mesh: MeshOptions,
    cache_dir: Path | None = None,
    _instancing: bool = True,
    cooling=None,
) -> GeometryInfo:
    """Build, fragment, name and mesh the model in the current gmsh model.

    Call on rank 0 only, after ``gmsh.initialize()``, with an empty current model.

    Args:
        geometry: the case's ``geometry:`` section.
        mesh: the case's ``mesh:`` section.
        cache_dir: where meshes are cached (see :func:`busbarfem.mesh.default_cache_dir`);
            None disables the cache.
        cooling: the case's ``cooling:`` section (cold plates and interface layers are built
            into the model, fragmented with the rest), or None.

    Returns:
        The regions (physical names with material/kind/field/stage), analytic volumes,
        and parameters including ``quality`` (see :func:`mesh_quality`).
    """
    # instancing (opt-in) changes the module plates and the mesh: it is part of the key
    geo_key = geometry.model_dump(mode="json")
    if cooling is not None:  # the plates and pads are part of the model
        geo_key["cooling"] = cooling.model_dump(mode="json", include={"plates", "interfaces"})
    key = mesh_cache.cache_key(geo_key,
                               {**mesh.model_dump(mode="json"), "instancing": instancing.ENABLED},
                               input_files(geometry))
    if cache_dir is not None and mesh.cache:
        hit = mesh_cache.load(cache_dir, key)
        if hit is not None:
            return hit

    t0 = time.perf_counter()
    if geometry.mesh_file is not None:  # an external mesh: nothing to build or mesh
        info = load_mesh_file(geometry.mesh_file)
        element_order = set_element_order(mesh, info, curved=False)
        info.parameters.update(element_order=element_order,
            geometry=geometry.model_dump(mode="json"), mesh=mesh.model_dump(mode="json"),
            gmsh_version=gmsh.__version__, timing={"build_s": 0.0,
                                                   "mesh_s": time.perf_counter() - t0},
            quality=mesh_quality(), cache={"key": key, "hit": False})
        return info
    gmsh.option.setNumber("General.NumThreads", mesh.threads)
    asm = build_assembly(geometry)
    plates = add_cooling(asm, cooling) if cooling is not None else []
    if not asm.parts:
        raise CaseError("the geometry section defines no solid", key="geometry")
    _add_terminals(asm, geometry)
    asm.fragment()
    add_contacts(asm, geometry)
    info = GeometryInfo()
    asm.add_physical_groups(info)
    if cooling is not None:
        tag_cooling(asm, cooling, plates, info)
    sizes = apply_size_fields(asm, mesh)
    t_build = time.perf_counter() - t0

    _check_element_budget(mesh)
    gmsh.option.setNumber("Mesh.Optimize", 1 if mesh.optimize else 0)
    # cylindrical modules only: on the pouch stacks the exactly repeated mesh made the
    # serial and 3-rank runs pick different regions for a tied hot spot
    # (tests/mpi/test_partition.py), and the lying opposite-tab stack falls back anyway
    if (geometry.module is not None and geometry.module.cell.type == "cylindrical"
            and instancing.ENABLED and _instancing):
        try:
            algorithm = instancing.mesh_instanced(lambda: _mesh_volumes(mesh))
        except Exception as exc:  # noqa: BLE001 - gmsh refused the periodic copies: mesh plainly
            logging.getLogger(__name__).info("meshing by instancing failed (%s); meshing every "
                                             "volume", exc)
            name = gmsh.model.getCurrent()
            gmsh.clear()
            gmsh.model.add(name)
            return generate_model(geometry, mesh, cache_dir, _instancing=False, cooling=cooling)
    else:
        algorithm = _mesh_volumes(mesh)
    element_order = set_element_order(mesh, info, curved=True)
    t_mesh = time.perf_counter() - t0 - t_build

    info.parameters.update(
        geometry=geometry.model_dump(mode="json"),
        mesh=mesh.model_dump(mode="json"),
        gmsh_version=gmsh.__version__,
        refinement=sizes,
        algorithm=algorithm,
        element_order=element_order,
        timing={"build_s": t_build, "mesh_s": t_mesh},
        builders=asm.summary,
        quality=mesh_quality(),
        cache={"key": key, "hit": False},
    )
    # fresh and cached runs read the same file the same way (bit-identical results)
    path = mesh_cache.round_trip(cache_dir if mesh.cache else None, key, info)
    if path is not None:
        info.parameters["cache"]["path"] = str(path)
    return info
