"""Gmsh -> DOLFINx: rank 0 builds and meshes the geometry, every rank receives its part.

The result is a :class:`MeshBundle`: the DOLFINx mesh, cell and facet tags, and the
region table (Gmsh physical names -> integer tags and :class:`~busbarfem.naming.RegionInfo`).
Surfaces for boundary conditions are looked up by name here and nowhere else.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import dolfinx_solver  # noqa: F401  (must precede dolfinx/petsc4py/mpi4py)
import numpy as np
from mpi4py import MPI

import dolfinx
from dolfinx import mesh as dmesh

from busbarfem import naming
from busbarfem.errors import CaseError
from busbarfem.naming import GeometryInfo, RegionInfo

CACHE_ENV = "BUSBARFEM_MESH_CACHE"
"""Environment variable naming the mesh cache folder (overrides the per-user default)."""


def default_cache_dir() -> Path:
    """The mesh cache folder, looked up at each call.

    ``$BUSBARFEM_MESH_CACHE`` if set, else ``$XDG_CACHE_HOME/busbarfem/meshes``, else
    ``~/.cache/busbarfem/meshes``: per user, never the source tree or the installed package.
    """
    import os

    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "busbarfem" / "meshes"


@contextlib.contextmanager
def meshing_watchdog(time_limit: float, where: str = ""):
    """Bound the wall time of a block of Gmsh/OpenCASCADE calls and let Ctrl-C stop it.

    Gmsh runs in C with the GIL released, so Python's SIGINT handler (and any alarm) only
    runs once the call returns - possibly hours later. Inside this block the C-level
    signal handler also writes the signal number to a pipe (``signal.set_wakeup_fd``,
    whichever thread receives it), and a watcher thread waits on that pipe: on Ctrl-C it
    prints ``error: interrupted`` and ends the process with exit code 130; when
    ``time_limit`` seconds have passed it prints the limit and ends it with exit code 2.
    Nothing useful is lost: no result exists before meshing ends. Outside the main thread,
    or when SIGINT is not handled by Python (ignored in a background job), only the time
    limit applies.

    Args:
        time_limit: seconds (``mesh.time_limit``).
        where: ``file:line:`` prefix naming the case file, for the message.
    """
    watch_int = (threading.current_thread() is threading.main_thread()
                 and callable(signal.getsignal(signal.SIGINT)))
    stop = threading.Event()
    rfd = wfd = None
    old_fd = -1
    if watch_int:
        rfd, wfd = os.pipe()
        os.set_blocking(wfd, False)
        try:
            old_fd = signal.set_wakeup_fd(wfd, warn_on_full_buffer=False)
        except ValueError:
            watch_int = False

    def die(code: int, text: str) -> None:
        try:
            sys.stdout.flush()
            sys.stderr.write(f"error: {text}\n")
            sys.stderr.flush()
        finally:
            os._exit(code)

    def watch() -> None:
        import select

        deadline = time.monotonic() + time_limit
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                die(2, f"{where}mesh.time_limit: building and meshing the geometry did not finish within "
                       f"{time_limit:g} s; coarsen mesh.size, check for solids that nearly touch or overlap "
                       "and for mm/m slips, or raise mesh.time_limit")
            if rfd is None:
                stop.wait(min(0.1, left))
                continue
            ready, _, _ = select.select([rfd], [], [], min(0.1, left))
            if ready and signal.SIGINT in os.read(rfd, 512) and not stop.is_set():
                die(130, "interrupted (Ctrl-C) while building/meshing the geometry; nothing was solved")

    t = threading.Thread(target=watch, name="busbarfem-mesh-watchdog", daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        if wfd is not None:
            try:  # wake the watcher out of its select now (it polls every 0.1 s otherwise)
                os.write(wfd, b"\0")
            except OSError:
                pass
        t.join()
        if watch_int:
            # a Ctrl-C that the watcher did not see still raises KeyboardInterrupt (exit 130)
            signal.set_wakeup_fd(old_fd)
        for fd in (rfd, wfd):
            if fd is not None:
                os.close(fd)


@dataclass
class MeshBundle:
    """A distributed mesh with its named regions.

    Attributes:
        mesh: the DOLFINx mesh.
        cell_tags: volume tags (Gmsh physical tags of the volume regions).
        facet_tags: surface tags (Gmsh physical tags of the named surfaces).
        regions: region name -> RegionInfo.
        tags: region name -> integer physical tag.
        info: the builder's GeometryInfo (parameters, analytic volumes, quality).
        mesh_seconds: wall time of geometry + meshing on rank 0.
    """

    mesh: dmesh.Mesh
    cell_tags: dmesh.MeshTags
    facet_tags: dmesh.MeshTags
    regions: dict[str, RegionInfo]
    tags: dict[str, int]
    info: GeometryInfo
    mesh_seconds: float = 0.0
    _exterior: np.ndarray | None = field(default=None, repr=False)
    _spaces: dict = field(default_factory=dict, repr=False)
    #: meshtags of disjoint cell-tag groups, shared by the forms that integrate over them
    #: (:class:`busbarfem.analysis.regions.SupportMeasure`)
    _supports: list = field(default_factory=list, repr=False)

    @property
    def comm(self) -> MPI.Comm:
        """The mesh communicator."""
        return self.mesh.comm

    @property
    def element_order(self) -> int:
        """Element order of the solution fields: the mesh's geometry degree (1 or 2)."""
        return int(self.mesh.geometry.cmaps[0].degree)

    def space(self, family: str, degree: int, shape: tuple = ()):
        """The function space ``(family, degree, shape)`` on the mesh, created once per bundle.

        The electrical and thermal problems and the output fields share their DG0 and
        Lagrange spaces through this: each ``fem.functionspace`` call builds its own dofmap
        (one int per cell and node of the cell), so separate copies of one space cost
        memory and nothing else.
        """
        from dolfinx import fem

        key = (family, int(degree), tuple(shape))
        V = self._spaces.get(key)
        if V is None or V.mesh is not self.mesh:  # a replaced mesh gets its own spaces
            V = fem.functionspace(self.mesh, (family, int(degree), tuple(shape)) if shape else (family, int(degree)))
            self._spaces[key] = V
        return V

    def volume_names(self) -> list[str]:
        """Names of the volume regions present in the mesh."""
        return [n for n, r in self.regions.items() if r.dim == 3 and n in self.tags]

    def surface_names(self) -> list[str]:
        """Names of the surface regions present in the mesh."""
        return [n for n, r in self.regions.items() if r.dim == 2 and n in self.tags]

    def cells_of(self, name: str) -> np.ndarray:
        """Local cell indices of volume region ``name``."""
        return self.cell_tags.find(self.tags[name])

    def exterior_facets(self) -> np.ndarray:
        """Local indices of all exterior boundary facets."""
        if self._exterior is None:
            tdim = self.mesh.topology.dim
            self.mesh.topology.create_connectivity(tdim - 1, tdim)
            self._exterior = dmesh.exterior_facet_indices(self.mesh.topology)
        return self._exterior

    def facets_of(self, name: str) -> np.ndarray:
        """Local facet indices for a boundary-condition region name.

        ``exterior`` -> every exterior facet; a surface name -> its tagged facets; a
        volume name -> the exterior facets of that volume.

        Raises:
            KeyError: the name is not a region (callers turn this into a CaseError).
        """
        if name == naming.EXTERIOR:
            return self.exterior_facets()
        if name not in self.tags:
            raise KeyError(name)
        reg = self.regions[name]
        if reg.dim == 2:
            return self.facet_tags.find(self.tags[name])
        tdim = self.mesh.topology.dim
        self.mesh.topology.create_connectivity(tdim, tdim - 1)
        c2f = self.mesh.topology.connectivity(tdim, tdim - 1)
        cells = self.cells_of(name)
        fac = np.unique(np.concatenate([c2f.links(c) for c in cells])) if len(cells) else np.zeros(0, np.int32)
        return np.intersect1d(fac, self.exterior_facets()).astype(np.int32)

    def bc_region_names(self) -> list[str]:
        """Every name valid where a boundary region is expected."""
        return [naming.EXTERIOR] + sorted(self.tags)


def _broadcast(comm: MPI.Comm, obj):
    return comm.bcast(obj, root=0)


def _extract_gmsh(model) -> tuple[dict, dict]:
    """Rank 0's part of :func:`gmsh_to_mesh`: per Gmsh element type, the 0-based node
    indices of its physically tagged elements, their physical tags and their Gmsh element
    tags, and the physical groups by name. As ``dolfinx.io.gmsh.extract_topology_and_markers``,
    but concatenated once per type: DOLFINx's version grows the arrays entity by entity
    (quadratic in the number of Gmsh entities: 1.66 s of the 8s6p module's 10.8 s mesh read)."""
    from dolfinx.io.gmsh import PhysicalGroup

    parts: dict[int, tuple[list, list, list]] = {}
    groups = {}
    nodes_of: dict[int, int] = {}
    for dim, tag in model.getPhysicalGroups():
        for ent in model.getEntitiesForPhysicalGroup(dim, tag):
            types, etags, enodes = model.mesh.getElements(dim, tag=ent)
            for t, et, en in zip(types, etags, enodes, strict=True):
                t = int(t)
                if t not in nodes_of:
                    nodes_of[t] = int(model.mesh.getElementProperties(t)[3])
                top, val, tg = parts.setdefault(t, ([], [], []))
                top.append(np.asarray(en, dtype=np.int64).reshape(-1, nodes_of[t]) - 1)
                val.append(np.full(len(et), tag, dtype=np.int32))
                tg.append(np.asarray(et, dtype=np.int64))
        groups[model.getPhysicalName(dim, tag)] = PhysicalGroup(int(dim), int(tag))
    return {t: tuple(np.concatenate(a) for a in arrs) for t, arrs in parts.items()}, groups


def gmsh_to_mesh(model, comm: MPI.Comm):
    """The current Gmsh model (on rank 0) as a distributed DOLFINx mesh with cell and facet tags.

    Equivalent to ``dolfinx.io.gmsh.model_to_mesh(model, comm, 0, gdim=3)`` for one cell type
    (same mesh, same partition, same tags; tests/mpi/test_mesh_convert.py), cheaper: the cell
    tags come from each local cell's input index (``Topology.original_cell_index``) and one
    broadcast of the tag array, not from DOLFINx's general entity matching (which found each
    cell again by its vertices: 1.8 s of the 8s6p module's mesh read on 1 rank), and the
    element arrays are gathered in one pass (:func:`_extract_gmsh`). Facet tags (dimension 2)
    go through DOLFINx's matching as before.

    Returns:
        ``dolfinx.io.gmsh.MeshData`` (ridge and peak tags None).
    """
    import dolfinx.io.gmsh as dgmsh
    from dolfinx.io.utils import distribute_entity_data

    head = None
    if comm.rank == 0:
        topo, groups = _extract_gmsh(model)
        if not groups:
            head = RuntimeError("no physical groups in the Gmsh model")
        else:
            dims = {t: int(model.mesh.getElementProperties(t)[1]) for t in topo}
            tdim = max(dims.values())
            ctypes = [t for t in topo if dims[t] == tdim]
            ftypes = [t for t in topo if dims[t] == tdim - 1]
            ntot = sum(len(e) for e in model.mesh.getElements(dim=tdim, tag=-1)[1])
            if len(ctypes) != 1 or len(ftypes) > 1:
                head = RuntimeError(f"one volume element type (and at most one facet type) expected; "
                                    f"found element types {sorted(topo)}")
            elif len(topo[ctypes[0]][2]) != ntot or len(np.unique(topo[ctypes[0]][2])) != ntot:
                head = RuntimeError(f"all cells are expected to be tagged once; {len(topo[ctypes[0]][2])} "
                                    f"tags for {ntot} cells")
            else:
                head = (tdim, ctypes[0], ftypes[0] if ftypes else None,
                        topo[ctypes[0]][0].shape[1], topo[ftypes[0]][0].shape[1] if ftypes else 0, groups)
    head = comm.bcast(head, root=0)
    if isinstance(head, BaseException):
        raise head
    tdim, ctype, ftype, ncn, nfn, groups = head
    ufl_domain = dgmsh.ufl_mesh(ctype, 3, dtype=dolfinx.default_real_type)
    perm = dgmsh.cell_perm_array(dolfinx.cpp.mesh.to_type(str(ufl_domain.ufl_cell())), ncn)
    if comm.rank == 0:
        x = dgmsh.extract_geometry(model)
        cells, cvals = topo[ctype][0][:, perm], topo[ctype][1]
        facets, fvals = topo[ftype][:2] if ftype is not None else (np.empty((0, nfn), np.int64), np.empty(0, np.int32))
    else:
        x = np.empty((0, 3), dtype=dolfinx.default_real_type)
        cells, cvals = np.empty((0, ncn), dtype=np.int64), None
        facets, fvals = np.empty((0, nfn), dtype=np.int64), np.empty(0, dtype=np.int32)
    msh = dmesh.create_mesh(comm, cells, ufl_domain, x)
    del cells, x
    cvals = comm.bcast(cvals, root=0)
    oci = np.asarray(msh.topology.original_cell_index, dtype=np.int64)
    ct = dmesh.meshtags(msh, tdim, np.arange(len(oci), dtype=np.int32), cvals[oci])
    ct.name = "cell_tags"
    del cvals
    # as model_to_mesh leaves it: locate_dofs_topological on cells needs it
    msh.topology.create_connectivity(tdim, tdim)
    ft = None
    if ftype is not None:
        ents, vals = distribute_entity_data(msh, tdim - 1, facets, fvals)
        msh.topology.create_connectivity(tdim - 1, tdim)
        ft = dmesh.meshtags_from_entities(msh, tdim - 1, dolfinx.graph.adjacencylist(ents),
                                          vals.astype(np.int32, copy=False))
        ft.name = "facet_tags"
    return dgmsh.MeshData(msh, ct, ft, None, None, groups)


def build_mesh(case, comm: MPI.Comm, cache_dir: Path | None = None, log=None,
               preview: Path | None = None, source=None) -> MeshBundle:
    """Build (or load from the cache) the case geometry's mesh and distribute it.

    Args:
        case: the validated Case.
        comm: communicator to distribute the mesh over.
        cache_dir: mesh cache folder (None: no cache; the CLI passes :func:`default_cache_dir`).
        log: optional callable for progress messages (rank 0).
        preview: write a PNG of the meshed geometry coloured by region here (rank 0).
        source: the case's CaseSource, to locate a ``mesh.time_limit`` error.

    Returns:
        The distributed :class:`MeshBundle`.
    """
    import gmsh

    from busbarfem.geometry import generate_model
    from busbarfem.geometry.assembly import new_gmsh_model

    t0 = time.perf_counter()
    info: GeometryInfo | None = None
    err: BaseException | None = None
    if comm.rank == 0:
        new_gmsh_model(case.name)
        where = ""
        if source is not None and "mesh.time_limit" in source.overrides:
            where = "command line --set: "
        elif source is not None:
            line = source.line_of("mesh.time_limit")
            where = f"{source.path}:{line}: " if line else f"{source.path}: "
        logging.getLogger(__name__).info("building and meshing the geometry (mesh.time_limit %g s; Ctrl-C stops)",
                                         case.mesh.time_limit)
        try:
            with meshing_watchdog(case.mesh.time_limit, where):
                info = generate_model(case.geometry, case.mesh, cache_dir,
                                      cooling=getattr(case, "cooling", None))
        except CaseError as exc:
            err = exc
        except Exception as exc:  # gmsh/OpenCASCADE failures: almost always impossible dimensions
            err = CaseError(f"Gmsh could not build or mesh the geometry ({exc}); check the dimensions "
                            "and positions for zero, tiny or huge values", key="geometry")
        except BaseException as exc:  # re-raised on every rank below, so no rank hangs
            err = exc
    err = _broadcast(comm, err)
    if err is not None:
        if comm.rank == 0:
            gmsh.clear()
        raise err
    meshed = time.perf_counter() - t0
    mesh_data = gmsh_to_mesh(gmsh.model, comm)
    if comm.rank == 0:
        if preview is not None:
            from busbarfem.geometry.preview import render_preview

            render_preview(preview)
        gmsh.clear()
    info = _broadcast(comm, info)
    tags = {name: int(pg.tag) for name, pg in mesh_data.physical_groups.items()}
    regions = {n: r for n, r in info.regions.items() if n in tags}
    for n, pg in mesh_data.physical_groups.items():
        if n not in regions:
            regions[n] = RegionInfo(name=n, dim=int(pg.dim), kind="surface" if pg.dim == 2 else "conductor")
    facet_tags = mesh_data.facet_tags
    if facet_tags is None:
        tdim = mesh_data.mesh.topology.dim
        facet_tags = dmesh.meshtags(mesh_data.mesh, tdim - 1, np.zeros(0, np.int32), np.zeros(0, np.int32))
    return MeshBundle(mesh=mesh_data.mesh, cell_tags=mesh_data.cell_tags, facet_tags=facet_tags,
                      regions=regions, tags=tags, info=info, mesh_seconds=meshed)
