"""Gmsh -> DOLFINx: rank 0 builds and meshes the geometry, every rank receives its part.

The result is a :class:`MeshBundle`: the DOLFINx mesh, cell and facet tags, and the
region table (Gmsh physical names -> integer tags and :class:`~busbarfem.naming.RegionInfo`).
Surfaces for boundary conditions are looked up by name here and nowhere else.
"""

from __future__ import annotations

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

def _default_cache() -> Path:
    """Mesh cache folder: $BUSBARFEM_MESH_CACHE, else the checkout's meshes/cache, else
    $XDG_CACHE_HOME/busbarfem/meshes (an installed package must not write into its venv)."""
    import os

    env = os.environ.get("BUSBARFEM_MESH_CACHE")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2]
    if (repo / "pyproject.toml").is_file() and (repo / "meshes").is_dir() and os.access(repo / "meshes", os.W_OK):
        return repo / "meshes" / "cache"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "busbarfem" / "meshes"


DEFAULT_CACHE = _default_cache()


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

    @property
    def comm(self) -> MPI.Comm:
        """The mesh communicator."""
        return self.mesh.comm

    @property
    def element_order(self) -> int:
        """Element order of the solution fields: the mesh's geometry degree (1 or 2)."""
        return int(self.mesh.geometry.cmaps[0].degree)

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


def build_mesh(case, comm: MPI.Comm, cache_dir: Path | None = DEFAULT_CACHE, log=None,
               preview: Path | None = None) -> MeshBundle:
    """Build (or load from the cache) the case geometry's mesh and distribute it.

    Args:
        case: the validated Case.
        comm: communicator to distribute the mesh over.
        cache_dir: mesh cache folder (None disables the cache).
        log: optional callable for progress messages (rank 0).
        preview: write a PNG of the meshed geometry coloured by region here (rank 0).

    Returns:
        The distributed :class:`MeshBundle`.
    """
    import gmsh

    from busbarfem.geometry import generate_model
    from busbarfem.materials import resolve_materials

    t0 = time.perf_counter()
    info: GeometryInfo | None = None
    err: BaseException | None = None
    if comm.rank == 0:
        if not gmsh.isInitialized():
            gmsh.initialize(interruptible=False)
        # the same case must mesh the same whatever ran before in this process
        gmsh.option.restoreDefaults()
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.clear()
        gmsh.model.add(case.name)
        try:
            info = generate_model(case.geometry, case.mesh, set(resolve_materials(case.materials)), cache_dir)
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
    mesh_data = dolfinx.io.gmsh.model_to_mesh(gmsh.model, comm, 0, gdim=3)
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
