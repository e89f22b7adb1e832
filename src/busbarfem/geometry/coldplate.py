"""Cold plates as Gmsh OCC solids: a plate with coolant channels cut along centre-lines.

A plate is a box (footprint ``size`` = (lx, ly) from ``origin``, ``thickness`` along z). Each
channel is a polyline centre-line (3D points, usually in the plate's mid-plane) swept with a
circular section (cylinders per straight run, spheres at the corners so the bends are
smooth-walled) or a rectangular one (boxes per run, extended by half the width at the corners
so the turns are square). The channels are cut out of the plate: their walls are exterior
faces of the mesh, where the coolant's Robin condition acts. A centre-line that starts or
ends on the plate's side opens there (the inlet/outlet port); one that ends inside is closed
by an end face, which belongs to the wall.

Regions (Gmsh physical names): the plate volume ``<plate>``; the surfaces ``<plate>_top``,
``<plate>_bottom`` (the faces at z = origin_z + thickness and origin_z, outside the channels)
and ``<plate>_<channel>_wall`` for every channel. Inlet and outlet are the first and last
centre-line points, kept in ``GeometryInfo.parameters["cold_plates"]``. Which 1D segment each
wall facet belongs to is decided on the DOLFINx mesh (nearest centre-line piece), so the 1D
resolution is free of the CAD (:mod:`busbarfem.physics.cooling`).

:func:`add_cold_plate` adds a plate to an :class:`~busbarfem.geometry.assembly.Assembly` (so it
fragments conformally with cells and busbars) and :func:`tag_cold_plate` names its faces after
the fragment; :func:`mesh_cold_plate` meshes a plate on its own into a :class:`MeshBundle`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import dolfinx_solver  # noqa: F401
import gmsh
import numpy as np
from mpi4py import MPI

from busbarfem.errors import CaseError
from busbarfem.geometry.assembly import Assembly, Part, new_gmsh_model
from busbarfem.naming import GeometryInfo, RegionInfo

PRIORITY_PLATE = 5  # below sheets and inserts: a busbar or cell overlapping a plate wins


@dataclass
class ChannelPath:
    """One coolant channel of a plate.

    Attributes:
        name: channel name (region ``<plate>_<name>_wall``).
        points: centre-line points [m], inlet first.
        shape: ``circular`` or ``rectangular``.
        diameter: circular section diameter [m].
        width, height: rectangular section [m] (width in the plate plane, height along z).
    """

    name: str
    points: list[tuple[float, float, float]]
    shape: str = "circular"
    diameter: float | None = None
    width: float | None = None
    height: float | None = None

    @property
    def half_size(self) -> float:
        """Largest distance of the wall from the centre-line [m]."""
        if self.shape == "circular":
            return self.diameter / 2
        return 0.5 * math.hypot(self.width, self.height)


@dataclass
class ColdPlateSpec:
    """A cold plate: a box with channels.

    Attributes:
        name: region name of the plate volume.
        material: material name (library or case ``materials:``).
        origin: lower corner (x, y, z) [m].
        size: footprint (lx, ly) [m].
        thickness: along z [m].
        channels: the channels cut out of it.
    """

    name: str
    material: str
    origin: tuple[float, float, float]
    size: tuple[float, float]
    thickness: float
    channels: list[ChannelPath] = field(default_factory=list)

    def wall_name(self, channel: str) -> str:
        """Physical name of a channel's wall surface."""
        return f"{self.name}_{channel}_wall"


def serpentine_points(start, run_length: float, pitch: float, passes: int, along=(1.0, 0.0, 0.0),
                      across=(0.0, 1.0, 0.0)) -> list[tuple[float, float, float]]:
    """Centre-line of a serpentine: ``passes`` straight runs of ``run_length`` along ``along``,
    ``pitch`` apart along ``across``, joined by U-turns (two corners each)."""
    p = np.asarray(start, float)
    a, c = np.asarray(along, float), np.asarray(across, float)
    pts = [tuple(p)]
    for i in range(passes):
        p = p + (a if i % 2 == 0 else -a) * run_length
        pts.append(tuple(p))
        if i < passes - 1:
            p = p + c * pitch
            pts.append(tuple(p))
    return pts


def _on_plate_side(pt, spec: ColdPlateSpec, tol: float) -> bool:
    x0, y0, _ = spec.origin
    lx, ly = spec.size
    return (abs(pt[0] - x0) < tol or abs(pt[0] - x0 - lx) < tol or abs(pt[1] - y0) < tol
            or abs(pt[1] - y0 - ly) < tol)


def _channel_solids(ch: ColdPlateSpec | ChannelPath, spec: ColdPlateSpec) -> list[tuple[int, int]]:
    """OCC solids of one channel (not yet fused)."""
    occ = gmsh.model.occ
    pts = np.asarray(ch.points, float)
    tol = 1e-9 * max(spec.size)
    out: list[tuple[int, int]] = []
    n = len(pts)
    for j in range(n - 1):
        a, b = pts[j].copy(), pts[j + 1].copy()
        d = b - a
        L = float(np.linalg.norm(d))
        e = d / L
        # open ends on the plate side stick out a little so the cut leaves a clean port
        ext = 2.0 * ch.half_size
        ea = ext if (j == 0 and _on_plate_side(a, spec, tol)) else 0.0
        eb = ext if (j == n - 2 and _on_plate_side(b, spec, tol)) else 0.0
        if ch.shape == "circular":
            a0 = a - e * ea
            out.append((3, occ.addCylinder(*a0, *(e * (L + ea + eb)), ch.diameter / 2)))
            if j < n - 2:
                out.append((3, occ.addSphere(*b, ch.diameter / 2)))
        else:
            # square corners: interior ends extend by half the width
            ha = ch.width / 2 if j > 0 else ea
            hb = ch.width / 2 if j < n - 2 else eb
            box = occ.addBox(-ha, -ch.width / 2, -ch.height / 2, L + ha + hb, ch.width, ch.height)
            if abs(e[2]) > 1e-12:
                raise CaseError(f"cold plate {spec.name!r}: rectangular channel {ch.name!r} must run in "
                                "the plate plane (constant z)")
            ang = math.atan2(e[1], e[0])
            occ.rotate([(3, box)], 0, 0, 0, 0, 0, 1, ang)
            occ.translate([(3, box)], *a)
            out.append((3, box))
    return out


def _check_inside(spec: ColdPlateSpec) -> None:
    x0, y0, z0 = spec.origin
    lx, ly = spec.size
    for i, ch in enumerate(spec.channels):
        pts = np.asarray(ch.points, float)
        r = ch.half_size if ch.shape == "circular" else ch.height / 2
        if len(pts) < 2 or np.any(np.linalg.norm(np.diff(pts, axis=0), axis=1) <= 1e-9 * max(lx, ly)):
            raise CaseError(f"cold plate {spec.name!r}: channel {ch.name!r} needs at least two distinct, "
                            "consecutive centre-line points", key=f"channels.{i}.path")
        if np.any(pts[:, 2] - r <= z0) or np.any(pts[:, 2] + r >= z0 + spec.thickness):
            raise CaseError(f"cold plate {spec.name!r}: channel {ch.name!r} breaks through the top or bottom "
                            f"face (z = {z0:g}..{z0 + spec.thickness:g} m, channel half-height {r:g} m)",
                            key=f"channels.{i}.path")
        tol = 1e-9 * max(lx, ly)
        if (np.any(pts[:, 0] < x0 - tol) or np.any(pts[:, 0] > x0 + lx + tol) or np.any(pts[:, 1] < y0 - tol)
                or np.any(pts[:, 1] > y0 + ly + tol)):
            raise CaseError(f"cold plate {spec.name!r}: channel {ch.name!r} leaves the plate footprint",
                            key=f"channels.{i}.path")


def add_cold_plate(asm: Assembly, spec: ColdPlateSpec) -> Part:
    """Build the plate minus its channels and register it as a Part of ``asm``."""
    _check_inside(spec)
    occ = gmsh.model.occ
    box = occ.addBox(*spec.origin, spec.size[0], spec.size[1], spec.thickness)
    tools = [dt for ch in spec.channels for dt in _channel_solids(ch, spec)]
    if tools:
        plate, _ = occ.cut([(3, box)], tools, removeObject=True, removeTool=True)
    else:
        plate = [(3, box)]
    occ.synchronize()
    # a thermal-only region: the electrical problem leaves it out (an insulated plate)
    info = RegionInfo(name=spec.name, dim=3, material=spec.material, kind="thermal", field=None)
    part = Part(info=info, dimtags=[dt for dt in plate if dt[0] == 3], priority=PRIORITY_PLATE,
                thickness=spec.thickness, size=channel_size(spec))
    asm.add(part)
    return part


def channel_size(spec: ColdPlateSpec) -> float | None:
    """Element size in a plate (and the layers on it): the smallest channel dimension [m], so
    a channel's section gets a few elements round its wall."""
    dims = [d for ch in spec.channels for d in (ch.diameter, ch.width, ch.height) if d]
    return min(dims) if dims else None


def _point_polyline_distance(p: np.ndarray, pts: np.ndarray) -> float:
    best = np.inf
    for a, b in zip(pts[:-1], pts[1:]):
        d = b - a
        t = np.clip(np.dot(p - a, d) / np.dot(d, d), 0.0, 1.0)
        best = min(best, float(np.linalg.norm(p - (a + t * d))))
    return best


def tag_cold_plate(asm: Assembly, spec: ColdPlateSpec, info: GeometryInfo) -> dict[str, list[int]]:
    """After the fragment: add the physical groups of the plate's faces (walls, top, bottom).

    A boundary face of the plate is a channel's wall when its centre of mass lies within the
    channel's half-size of its centre-line (off the plate's outer planes).
    """
    occ = gmsh.model.occ
    faces = asm.boundary_faces(spec.name)
    x0, y0, z0 = spec.origin
    lx, ly = spec.size
    tol = 1e-3 * spec.thickness  # OCC bounding boxes are padded by ~1e-7 m
    groups: dict[str, list[int]] = {spec.wall_name(ch.name): [] for ch in spec.channels}
    groups[f"{spec.name}_top"] = []
    groups[f"{spec.name}_bottom"] = []
    for f in faces:
        bb = gmsh.model.getBoundingBox(2, f)
        if abs(bb[2] - z0) < tol and abs(bb[5] - z0) < tol:
            groups[f"{spec.name}_bottom"].append(f)
            continue
        if abs(bb[2] - z0 - spec.thickness) < tol and abs(bb[5] - z0 - spec.thickness) < tol:
            groups[f"{spec.name}_top"].append(f)
            continue
        on_side = any(abs(bb[i] - v) < tol and abs(bb[i + 3] - v) < tol
                      for i, v in ((0, x0), (0, x0 + lx), (1, y0), (1, y0 + ly)))
        if on_side:  # the plate's outer sides (with the ports' holes)
            continue
        c = np.asarray(occ.getCenterOfMass(2, f))
        for ch in spec.channels:
            if _point_polyline_distance(c, np.asarray(ch.points, float)) <= ch.half_size * (1 + 1e-6) + 1e-9:
                groups[spec.wall_name(ch.name)].append(f)
                break
    for name, tags in groups.items():
        if not tags:
            raise CaseError(f"cold plate {spec.name!r}: no face found for {name!r} (channel outside the plate?)")
        gmsh.model.addPhysicalGroup(2, sorted(tags), name=name)
        info.add(RegionInfo(name=name, dim=2, kind="surface", field=None))
    info.parameters.setdefault("cold_plates", {})[spec.name] = {
        "channels": {ch.name: {"inlet": list(map(float, ch.points[0])), "outlet": list(map(float, ch.points[-1])),
                               "wall": spec.wall_name(ch.name)} for ch in spec.channels}}
    return groups


def add_interface_layer(asm: Assembly, spec: ColdPlateSpec, name: str, thickness: float) -> Part:
    """A layer (gap pad, TIM) of ``thickness`` covering the plate's top face, as a Part named ``name``."""
    x0, y0, z0 = spec.origin
    box = gmsh.model.occ.addBox(x0, y0, z0 + spec.thickness, spec.size[0], spec.size[1], thickness)
    gmsh.model.occ.synchronize()
    info = RegionInfo(name=name, dim=3, material=name, kind="thermal", field=None)
    part = Part(info=info, dimtags=[(3, box)], priority=PRIORITY_PLATE, thickness=thickness,
                volume=spec.size[0] * spec.size[1] * thickness, size=channel_size(spec))
    asm.add(part)
    return part


def tag_interface_layer(asm: Assembly, spec: ColdPlateSpec, name: str, thickness: float, info: GeometryInfo) -> None:
    """After the fragment: the layer's top face as surface ``<name>_top``."""
    ztop = spec.origin[2] + spec.thickness + thickness
    tol = 1e-3 * thickness
    tags = [f for f in asm.boundary_faces(name)
            if abs(gmsh.model.getBoundingBox(2, f)[2] - ztop) < tol and abs(gmsh.model.getBoundingBox(2, f)[5] - ztop) < tol]
    gmsh.model.addPhysicalGroup(2, tags, name=f"{name}_top")
    info.add(RegionInfo(name=f"{name}_top", dim=2, kind="surface", field=None))


def mesh_cold_plate(spec: ColdPlateSpec, comm: MPI.Comm, size: float, wall_size: float | None = None,
                    layers: list[tuple[str, float]] | None = None):
    """Mesh one plate on its own (rank 0 meshes, every rank receives its part).

    Args:
        spec: the plate.
        comm: communicator.
        size: element size in the plate [m].
        wall_size: element size on the channel walls [m] (default: size / 3).
        layers: (name, thickness) of interface layers stacked on the plate's top face.

    Returns:
        A :class:`~busbarfem.mesh.MeshBundle` with the plate's regions.
    """
    from busbarfem.mesh import MeshBundle, gmsh_to_mesh

    info = GeometryInfo()
    err = None
    if comm.rank == 0:
        new_gmsh_model(spec.name)
        try:
            asm = Assembly()
            add_cold_plate(asm, spec)
            for lname, lt in layers or []:
                add_interface_layer(asm, spec, lname, lt)
            asm.fragment()
            asm.add_physical_groups(info)
            groups = tag_cold_plate(asm, spec, info)
            for lname, lt in layers or []:
                tag_interface_layer(asm, spec, lname, lt, info)
            walls = sorted({t for n, ts in groups.items() if n.endswith("_wall") for t in ts})
            fld = gmsh.model.mesh.field
            dist = fld.add("Distance")
            fld.setNumbers(dist, "SurfacesList", walls)
            thr = fld.add("Threshold")
            ws = wall_size or size / 3
            fld.setNumber(thr, "InField", dist)
            fld.setNumber(thr, "SizeMin", ws)
            fld.setNumber(thr, "SizeMax", size)
            fld.setNumber(thr, "DistMin", 0.0)
            fld.setNumber(thr, "DistMax", 4 * max(ch.half_size for ch in spec.channels) if spec.channels else size)
            fld.setAsBackgroundMesh(thr)
            gmsh.option.setNumber("Mesh.MeshSizeMax", size)
            gmsh.option.setNumber("Mesh.MeshSizeExtendFromBoundary", 0)
            gmsh.option.setNumber("Mesh.MeshSizeFromPoints", 0)
            gmsh.option.setNumber("Mesh.MeshSizeFromCurvature", 0)
            gmsh.model.mesh.generate(3)
        except CaseError as exc:
            err = exc
    err = comm.bcast(err, root=0)
    if err is not None:
        raise err
    data = gmsh_to_mesh(gmsh.model, comm)
    if comm.rank == 0:
        gmsh.clear()
    info = comm.bcast(info, root=0)
    tags = {name: int(pg.tag) for name, pg in data.physical_groups.items()}
    regions = {n: r for n, r in info.regions.items() if n in tags}
    return MeshBundle(mesh=data.mesh, cell_tags=data.cell_tags, facet_tags=data.facet_tags, regions=regions,
                      tags=tags, info=info)


def plates_from_case(cooling) -> list[ColdPlateSpec]:
    """The plates of a case's ``cooling:`` section (:class:`busbarfem.case.cooling.Cooling`)."""
    return [ColdPlateSpec(p.name, p.material, tuple(p.origin), tuple(p.size), p.thickness,
                          [ChannelPath(c.name, c.points(), c.shape, c.diameter, c.width, c.height)
                           for c in p.channels]) for p in cooling.plates]


def add_cooling(asm: Assembly, cooling) -> list[ColdPlateSpec]:
    """Add the plates and interface layers of a case's ``cooling:`` section to ``asm`` (before
    the fragment, so they are conformal with the cells and busbars they touch)."""
    specs = plates_from_case(cooling)
    by_name = {s.name: s for s in specs}
    for i, spec in enumerate(specs):
        add_cold_plate(asm, spec).key = f"cooling.plates.{i}"
    for i, layer in enumerate(cooling.interfaces):
        t = layer_thickness(layer)
        add_interface_layer(asm, by_name[layer.plate], layer.name, t).key = f"cooling.interfaces.{i}"
    return specs


def tag_cooling(asm: Assembly, cooling, specs: list[ColdPlateSpec], info: GeometryInfo) -> None:
    """After the fragment and the physical groups: the plates' walls/top/bottom and the layers' tops."""
    by_name = {s.name: s for s in specs}
    for spec in specs:
        tag_cold_plate(asm, spec, info)
    for layer in cooling.interfaces:
        tag_interface_layer(asm, by_name[layer.plate], layer.name, layer_thickness(layer), info)


def layer_thickness(layer) -> float:
    """Meshed thickness of an interface layer (:class:`busbarfem.case.cooling.InterfaceLayer`) [m]."""
    return layer.model_thickness or layer.thickness or 5e-4
