"""Per-region integrals and field extrema with their location and region name (MPI-safe)."""

from __future__ import annotations

import dolfinx_solver  # noqa: F401
import numpy as np
import ufl
from mpi4py import MPI

from dolfinx import fem, la

from busbarfem.mesh import MeshBundle


def support_key(tags) -> tuple[int, ...] | None:
    """A support as a sorted tuple of distinct cell tags (None stays None: the whole mesh)."""
    return None if tags is None else tuple(sorted({int(t) for t in tags}))


def split_by_support(bundle: MeshBundle, parts) -> list:
    """Integrands ``[(integrand, cell tags or None)]`` regrouped so that each cell is in one
    integral: those of one support summed, the whole-mesh ones (tags None) added to every
    support's and integrated on their own over the remaining regions (``[(integrand, tags)]``,
    tags a sorted tuple; None: the whole mesh). One packing of the coefficients per cell, as
    for a single whole-mesh integral, and the regions outside every support get the rule of
    the whole-mesh integrands alone. Overlapping supports keep the whole-mesh integral."""
    groups: dict = {}
    for f, tags in parts:
        key = support_key(tags)
        groups[key] = groups[key] + f if key in groups else f
    whole = groups.pop(None, None)
    if not groups:
        return [] if whole is None else [(whole, None)]
    used = [t for key in groups for t in key]
    if len(used) != len(set(used)) or whole is None:
        return ([] if whole is None else [(whole, None)]) + [(f, key) for key, f in groups.items()]
    rest = tuple(sorted({int(bundle.tags[n]) for n in bundle.volume_names()} - set(used)))
    return [(f + whole, key) for key, f in groups.items()] + ([(whole, rest)] if rest else [])


class SupportMeasure:
    """``dx`` over the cells of a support (a tuple of cell tags; None: the whole mesh).

    Disjoint supports each become one subdomain of a meshtags of their own (one integral per
    support: a support of eight cell bodies is one integral, not eight, which UFL and FFCx
    process eight times over at every form set-up); overlapping ones use the cell tags. The
    meshtags are kept on the bundle and shared by every measure whose supports they hold.
    """

    def __init__(self, bundle: MeshBundle, keys):
        self.bundle = bundle
        keys = list(dict.fromkeys(k for k in keys if k is not None))
        flat = [t for k in keys for t in k]
        self._ids = None
        data = bundle.cell_tags
        if flat and len(flat) == len(set(flat)):
            data, self._ids = self._shared_tags(keys)
        self.tags = data
        self._dx = ufl.Measure("dx", domain=bundle.mesh, subdomain_data=data)

    def _shared_tags(self, keys: list) -> tuple:
        """A meshtags giving each of the disjoint ``keys`` one id, and those ids: one the bundle
        already holds that covers them all, else a new one (kept on the bundle)."""
        from dolfinx import mesh as dmesh

        b = self.bundle
        cache = getattr(b, "_supports", None)
        if cache is None:
            cache = []
            try:
                b._supports = cache
            except AttributeError:  # a bundle that takes no attributes: nothing shared
                pass
        for cell_tags, tags, ids in cache:
            if cell_tags is b.cell_tags and all(k in ids for k in keys):
                return tags, ids
        ct = b.cell_tags
        vals = np.asarray(ct.values, dtype=np.int64)
        flat = [t for k in keys for t in k]
        lut = np.zeros(max(int(vals.max(initial=0)), max(flat)) + 1, dtype=np.int32)
        for i, k in enumerate(keys):
            lut[list(k)] = i + 1
        new = lut[vals]
        sel = new > 0
        tags = dmesh.meshtags(b.mesh, b.mesh.topology.dim, np.asarray(ct.indices, dtype=np.int32)[sel], new[sel])
        ids = {k: i + 1 for i, k in enumerate(keys)}
        cache.append((ct, tags, ids))
        return tags, ids

    def __call__(self, key, metadata=None):
        """The measure of support ``key`` (None: the whole mesh), with optional ``metadata``."""
        md = {} if metadata is None else {"metadata": metadata}
        if key is None:
            return ufl.dx(domain=self.bundle.mesh, **md)
        return self._dx(self._ids[key] if self._ids is not None else tuple(key), **md)


class RegionIntegrator:
    """Integrates a UFL density over every volume region in one vector assembly.

    The density is integrated against the DG0 test function, so one assembly gives
    the integral over every cell; the cells are then summed by region tag. A density that
    is one scalar Function (a cell's mean temperature: the integral of T) is linear in its
    values: the matrix ``W`` of ``(u, v_DG0)`` is assembled once and each call is the product
    ``W T`` (0.3 ms instead of a 6 ms assembly at 117k cells; the same integrals, summed in
    another order).
    """

    def __init__(self, bundle: MeshBundle, density, regions=None):
        """``regions``: the volume regions outside which ``density`` is exactly zero (None:
        anywhere); the assembly then loops over their cells only (the cells' transfer current
        over the cell bodies: a third of the 4s2p mesh)."""
        self.bundle = bundle
        self.Q0 = fem.functionspace(bundle.mesh, ("DG", 0))
        v = ufl.TestFunction(self.Q0)
        dx = ufl.dx(domain=bundle.mesh)
        if regions is not None:
            key = support_key(bundle.tags[n] for n in regions)
            dx = SupportMeasure(bundle, [key])(key)  # one integral over all of them
        imap = bundle.mesh.topology.index_map(bundle.mesh.topology.dim)
        self.nlocal = imap.size_local
        self.names = bundle.volume_names()
        ct = bundle.cell_tags
        # owned cells of every region, resolved once (by_region runs every time step)
        self._cells = [c[c < self.nlocal] for c in (ct.find(bundle.tags[n]) for n in self.names)]
        self._fn = self._W = None
        if regions is None and isinstance(density, fem.Function) and density.function_space.num_sub_spaces == 0 \
                and density.function_space.dofmap.index_map_bs == 1:
            from dolfinx.fem import petsc as fpetsc

            self._fn = density
            self._W = fpetsc.assemble_matrix(fem.form(ufl.TrialFunction(density.function_space) * v * dx))
            self._W.assemble()
            self._Wx = self._W.createVecLeft()
            self.form = None
        else:
            self.form = fem.form(density * v * dx)

    def per_cell(self) -> np.ndarray:
        """Integral over each owned cell."""
        if self._W is not None:
            self._W.mult(self._fn.x.petsc_vec, self._Wx)
            return self._Wx.array_r[: self.nlocal].copy()
        vec = fem.assemble_vector(self.form)
        vec.scatter_reverse(la.InsertMode.add)
        return vec.array[: self.nlocal].copy()

    def by_region(self) -> dict[str, float]:
        """Integral over every volume region (global sums, same on all ranks)."""
        vals = self.per_cell()
        out = [float(vals[cells].sum()) for cells in self._cells]
        tot = self.bundle.comm.allreduce(np.asarray(out), op=MPI.SUM)
        return {n: float(x) for n, x in zip(self.names, tot)}



class RegionBreakdown:
    """Integrates several named densities over every volume region in one vector assembly.

    The densities are tested against one blocked DG0 function (one component per
    density), so a single assembly (one packing of the coefficients) gives every density's
    integral over every cell.

    Args:
        bundle: mesh and regions.
        densities: ``{name: UFL density}``.
        total: name of an extra entry of :meth:`by_region`, the sum of all densities per
            region (None: none); summed from the components, not integrated again.
        extra: ``{name: UFL density}`` integrated over the whole mesh in the same assembly
            (each its own integral, so with the quadrature it has on its own), available
            in :attr:`extra_totals` after :meth:`by_region`.
        support: ``{name: cell tags}`` of densities (or extra densities) that are exactly
            zero outside the cells of those tags: integrated over those cells only (the
            densities of one support together, with the rule they have on their own).
    """

    def __init__(self, bundle: MeshBundle, densities: dict, total: str | None = None, extra: dict | None = None,
                 support: dict | None = None):
        self.bundle = bundle
        self.keys = list(densities)
        self.total = total
        extra = dict(extra or {})
        self.extra = extra  # the extra densities (UFL), by name
        self.extra_keys = list(extra)
        n = len(self.keys) + len(self.extra_keys)
        self.ncomp = n
        self.Q0 = fem.functionspace(bundle.mesh, ("DG", 0, (n,)))
        v = ufl.TestFunction(self.Q0)
        support = {k: support_key(t) for k, t in (support or {}).items()}
        # the heat densities by support (split_by_support); each extra its own integral
        groups = split_by_support(bundle, [(d * v[k], support.get(name)) for k, (name, d) in enumerate(densities.items())])
        dxs = SupportMeasure(bundle, [key for _, key in groups] + [support.get(n) for n in extra])
        if not extra:
            form = sum(g * dxs(key) for g, key in groups)
        else:
            # UFL merges the integrals of one domain before it estimates their degree: give each
            # part the rule it has on its own, so the sums are those of the separate forms
            from busbarfem.physics.thermal import quadrature_degree

            def own(g, key):
                return g * dxs(key, {"quadrature_degree": quadrature_degree(g * dxs(key))})

            form = sum(own(g, key) for g, key in groups)
            for j, (name, d) in enumerate(extra.items()):
                form = form + own(d * v[len(self.keys) + j], support.get(name))
        self.form = fem.form(form)
        imap = bundle.mesh.topology.index_map(bundle.mesh.topology.dim)
        self.nlocal = imap.size_local
        self.names = bundle.volume_names()
        ct = bundle.cell_tags
        self._cells = [c[c < self.nlocal] for c in (ct.find(bundle.tags[nm]) for nm in self.names)]
        self.extra_totals: dict[str, float] = {}

    def by_region(self) -> dict[str, dict[str, float]]:
        """``{density name: {region: integral}}`` (global sums, same on all ranks), with the
        ``total`` entry if asked; sets :attr:`extra_totals`."""
        vec = fem.assemble_vector(self.form)
        vec.scatter_reverse(la.InsertMode.add)
        vals = vec.array.reshape(-1, self.ncomp)[: self.nlocal]
        nk, ne = len(self.keys), len(self.extra_keys)
        local = np.array([vals[cells, :nk].sum(axis=0) for cells in self._cells]).reshape(len(self.names), nk)
        local = np.concatenate([local.ravel(), vals[:, nk:].sum(axis=0)]) if ne else local.ravel()
        tot = self.bundle.comm.allreduce(local, op=MPI.SUM)
        per = tot[: len(self.names) * nk].reshape(len(self.names), nk)
        out = {k: {nm: float(per[i, j]) for i, nm in enumerate(self.names)} for j, k in enumerate(self.keys)}
        if self.total is not None:
            out[self.total] = {nm: float(per[i].sum()) for i, nm in enumerate(self.names)}
        self.extra_totals = {k: float(x) for k, x in zip(self.extra_keys, tot[len(self.names) * nk:])}
        return out


def _cell_region_name(bundle: MeshBundle, cell: int) -> str:
    """Region name of one local cell ("" if untagged or not a volume region)."""
    inv = {t: nm for nm, t in bundle.tags.items() if bundle.regions[nm].dim == 3}
    ct = bundle.cell_tags
    hit = np.flatnonzero(ct.indices == cell)
    return inv.get(int(ct.values[hit[-1]]), "") if len(hit) else ""


def extremum(bundle: MeshBundle, fn: fem.Function, kind: str = "max") -> dict:
    """Global max/min of a scalar Function's dof values with coordinates and region.

    Works for nodal (Lagrange) and cellwise (DG0) functions; ties go to the lowest rank.
    """
    V = fn.function_space
    comm = bundle.comm
    nown = V.dofmap.index_map.size_local
    vals = fn.x.array[:nown]
    if len(vals):
        i = int(np.argmax(vals) if kind == "max" else np.argmin(vals))
        best = float(vals[i])
    else:
        i, best = -1, (-np.inf if kind == "max" else np.inf)
    allbest = comm.allgather(best)
    winner = int(np.argmax(allbest) if kind == "max" else np.argmin(allbest))
    info = None
    if comm.rank == winner:
        coords = V.tabulate_dof_coordinates()[i]
        # region of an adjacent cell: find a cell whose dofs include i
        hits = np.argwhere(V.dofmap.list == i)
        region = _cell_region_name(bundle, int(hits[0, 0])) if len(hits) else ""
        info = {"value": best, "x": [float(c) for c in coords], "region": region}
    return comm.bcast(info, root=winner)


class RunExtrema:
    """Extrema of fields over a whole run, with the time at which each occurred.

    :meth:`offer` is called after every recorded step with the global extreme value
    (identical on all ranks); when it beats the incumbent, a copy of the field's dof
    values is kept, and :meth:`result` locates the extremum in that copy (place and
    region) only when asked. Ties keep the earliest time.
    """

    def __init__(self):
        self._best: dict[str, dict] = {}

    def offer(self, key: str, kind: str, value: float, t: float, fn: fem.Function) -> None:
        """Candidate ``value`` of ``fn`` at time ``t`` for extremum ``key`` (kind "max"/"min")."""
        inc = self._best.get(key)
        if inc is None or (value > inc["value"] if kind == "max" else value < inc["value"]):
            self._best[key] = {"value": value, "time_s": t, "kind": kind, "space": fn.function_space,
                               "array": fn.x.array.copy()}

    def result(self, bundle: MeshBundle, key: str) -> dict | None:
        """``{value, x, region, time_s}`` of extremum ``key`` (collective), None if never offered."""
        inc = self._best.get(key)
        if inc is None:
            return None
        if "array" not in inc:  # restored from a checkpoint: already located
            return {k: inc[k] for k in ("value", "x", "region", "time_s")}
        f = fem.Function(inc["space"])
        f.x.array[:] = inc["array"]
        return {**extremum(bundle, f, inc["kind"]), "time_s": inc["time_s"]}

    def state_dict(self, bundle: MeshBundle) -> dict:
        """Located extrema as plain data for a checkpoint (collective)."""
        return {k: {**self.result(bundle, k), "kind": v["kind"]} for k, v in self._best.items()}

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict` output."""
        self._best = {k: dict(v) for k, v in state.items()}
