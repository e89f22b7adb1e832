"""Hot spots: the top-N separated local maxima of a scalar field, with place and region.

A hot spot is a *local* maximum (no mesh neighbour is larger: for a nodal field the
nodes sharing a cell, for a cellwise DG0 field the cells sharing a vertex), and the
spots are thinned by greedy non-maximum suppression: taken in decreasing order, a
candidate closer than ``min_separation`` to an already chosen spot is dropped. So the
list names N distinct places, not N nodes of the same blob.

MPI: the neighbour maxima are reduced over the index maps (ghost -> owner -> ghost), so
the local-maximum test is exact across partition boundaries; every rank's candidates are
then gathered to all ranks, which run the same deterministic suppression and return the
same list.
"""

from __future__ import annotations

import json
from pathlib import Path

import dolfinx_solver  # noqa: F401
import numpy as np

#: candidates kept per rank before the suppression (the largest local maxima).
CANDIDATES_PER_RANK = 2000


def _reduce_max(comm, imap, values: np.ndarray) -> np.ndarray:
    """Max over every copy of each index (owned + ghosts) on all ranks, written everywhere.

    ``values`` holds owned entries then ghost entries, in the index map's order.
    """
    nown = imap.size_local
    ghosts = np.asarray(imap.ghosts, dtype=np.int64)
    owners = np.asarray(imap.owners, dtype=np.int32)
    r0 = imap.local_range[0]
    gvals = values[nown:nown + len(ghosts)]
    per_rank = [np.flatnonzero(owners == p) for p in range(comm.size)]
    received = comm.alltoall([(ghosts[i], gvals[i]) for i in per_rank])
    for gidx, gv in received:
        if len(gidx):
            np.maximum.at(values, gidx - r0, gv)
    replies = comm.alltoall([values[gidx - r0] for gidx, _ in received])
    for idx, rep in zip(per_rank, replies):
        values[nown + idx] = rep
    return values


def _local_maxima(bundle, fn, sign: float) -> np.ndarray:
    """Boolean mask over owned dofs: no mesh neighbour has a larger value of sign*fn."""
    V = fn.function_space
    msh = bundle.mesh
    comm = bundle.comm
    imap = V.dofmap.index_map
    if V.dofmap.index_map_bs != 1:
        raise ValueError("find_hotspots needs a scalar Function")
    fn.x.scatter_forward()
    vals = sign * fn.x.array.copy()
    dl = np.asarray(V.dofmap.list)
    nown = imap.size_local
    if dl.shape[1] == 1:  # cellwise (DG0): neighbours are the cells sharing a vertex
        tdim = msh.topology.dim
        msh.topology.create_connectivity(tdim, 0)
        c2v = msh.topology.connectivity(tdim, 0)
        nv = int(c2v.offsets[1] - c2v.offsets[0])
        cv = np.asarray(c2v.array).reshape(-1, nv)[: len(dl)]
        vimap = msh.topology.index_map(0)
        cell_val = vals[dl[:, 0]]
        vmax = np.full(vimap.size_local + vimap.num_ghosts, -np.inf)
        np.maximum.at(vmax, cv.ravel(), np.repeat(cell_val, nv))
        vmax = _reduce_max(comm, vimap, vmax)
        mask = np.zeros(len(vals), dtype=bool)
        mask[dl[:, 0]] = cell_val >= vmax[cv].max(axis=1)
    else:  # nodal: neighbours are the dofs sharing a cell
        cmax = vals[dl].max(axis=1)
        nbmax = np.full(len(vals), -np.inf)
        np.maximum.at(nbmax, dl.ravel(), np.repeat(cmax, dl.shape[1]))
        nbmax = _reduce_max(comm, imap, nbmax)
        mask = vals >= nbmax
    return mask[:nown]


def _dof_regions(bundle, fn) -> np.ndarray:
    """Region name of each owned dof.

    DG0: the cell's region. Nodal: of all cells sharing the node (on any rank), the
    region with the smallest tag, so the answer does not depend on the partition.
    """
    V = fn.function_space
    dl = np.asarray(V.dofmap.list)
    imap = V.dofmap.index_map
    nown = imap.size_local
    ncell = len(dl)
    cell_tag = np.full(ncell, np.iinfo(np.int32).max, dtype=np.int64)
    ct = bundle.cell_tags
    keep = ct.indices < ncell
    cell_tag[ct.indices[keep]] = ct.values[keep]
    # max of -tag == min of tag, reduced over every copy of the dof
    neg = np.full(imap.size_local + imap.num_ghosts, -np.inf)
    np.maximum.at(neg, dl.ravel(), np.repeat(-cell_tag.astype(float), dl.shape[1]))
    if dl.shape[1] > 1:
        neg = _reduce_max(bundle.comm, imap, neg)
    inv = {t: n for n, t in bundle.tags.items() if bundle.regions[n].dim == 3}
    out = np.full(nown, "", dtype=object)
    fin = np.flatnonzero(np.isfinite(neg[:nown]))
    tags = (-neg[fin]).astype(np.int64)  # exact: the tags are integers stored as floats
    for t in np.unique(tags):  # one assignment per tag, not a Python loop over the dofs
        out[fin[tags == t]] = inv.get(int(t), "")
    return out


def default_separation(bundle, fraction: float = 0.05) -> float:
    """``fraction`` of the global bounding-box diagonal of the mesh."""
    x = bundle.mesh.geometry.x
    comm = bundle.comm
    lo = [float(v) for v in (np.min(x, axis=0) if len(x) else np.full(3, np.inf))]
    hi = [float(v) for v in (np.max(x, axis=0) if len(x) else np.full(3, -np.inf))]
    lo = np.min(comm.allgather(lo), axis=0)
    hi = np.max(comm.allgather(hi), axis=0)
    return float(fraction * np.linalg.norm(hi - lo))


def suppress(values: np.ndarray, points: np.ndarray, n: int, min_separation: float) -> list[int]:
    """Greedy non-maximum suppression: indices of at most ``n`` spots, largest first.

    ``values`` must already be sorted in decreasing order of priority.
    """
    chosen: list[int] = []
    for i in range(len(values)):
        if all(np.linalg.norm(points[i] - points[j]) >= min_separation for j in chosen):
            chosen.append(i)
            if len(chosen) == n:
                break
    return chosen


def find_hotspots(bundle, fn, n: int = 5, min_separation: float | None = None, kind: str = "max") -> list[dict]:
    """The ``n`` largest (``kind="max"``) or smallest separated local extrema of ``fn``.

    Args:
        bundle: the MeshBundle (mesh, cell tags, region names, communicator).
        fn: a scalar Function, nodal (Lagrange) or cellwise (DG0).
        n: how many spots.
        min_separation: minimal distance between two spots [m]; default 5 % of the
            bounding-box diagonal.
        kind: ``"max"`` or ``"min"``.

    Returns:
        Spots sorted from the most extreme, each ``{"value", "x": [x, y, z], "region"}``;
        the same list on every rank.
    """
    if kind not in ("max", "min"):
        raise ValueError(f"kind must be 'max' or 'min', got {kind!r}")
    sign = 1.0 if kind == "max" else -1.0
    comm = bundle.comm
    if min_separation is None:
        min_separation = default_separation(bundle)
    mask = _local_maxima(bundle, fn, sign)
    nown = len(mask)
    idx = np.flatnonzero(mask)
    vals = sign * fn.x.array[:nown][idx]
    order = np.argsort(-vals, kind="stable")[:CANDIDATES_PER_RANK]
    idx = idx[order]
    coords = fn.function_space.tabulate_dof_coordinates()[:nown][idx] if len(idx) else np.zeros((0, 3))
    dof_regions = _dof_regions(bundle, fn)  # collective: every rank must call it
    regions = dof_regions[idx] if len(idx) else np.zeros(0, dtype=object)
    local = [(float(fn.x.array[i]), [float(c) for c in x], str(r), comm.rank, int(i))
             for i, x, r in zip(idx, coords, regions)]
    cand = [c for part in comm.allgather(local) for c in part]
    # decreasing priority; ties broken by rank and local index so every rank agrees
    cand.sort(key=lambda c: (-sign * c[0], c[3], c[4]))
    if not cand:
        return []
    pts = np.array([c[1] for c in cand])
    chosen = suppress(np.array([c[0] for c in cand]), pts, n, min_separation)
    return [{"value": cand[i][0], "x": cand[i][1], "region": cand[i][2]} for i in chosen]


def write_hotspots_json(path, T_hot: list[dict], J_hot: list[dict], meta: dict | None = None) -> Path:
    """Write ``hotspots.json`` (call on rank 0): T and |J| hot spots with units.

    Args:
        path: file path (or an output folder, then ``hotspots.json`` inside it).
        T_hot: :func:`find_hotspots` of the temperature.
        J_hot: :func:`find_hotspots` of the current-density magnitude.
        meta: extra entries (e.g. ``min_separation_m``).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "hotspots.json"
    data = {"T": T_hot, "J_magnitude": J_hot, "units": {"T": "K", "J_magnitude": "A/m^2", "x": "m"}}
    data.update(meta or {})
    path.write_text(json.dumps(data, indent=2))
    return path


def hotspots(bundle, T, J_magnitude, outdir: Path | None = None, n: int = 5) -> dict:
    """T and |J| hot spots of solved fields (collective).

    Args:
        bundle: the MeshBundle.
        T: nodal temperature Function (as written to the fields).
        J_magnitude: DG0 current-density magnitude Function.
        outdir: when given, rank 0 writes ``hotspots.json`` into it.
        n: spots per field.
    """
    sep = default_separation(bundle)
    T_hot = find_hotspots(bundle, T, n=n, min_separation=sep)
    J_hot = find_hotspots(bundle, J_magnitude, n=n, min_separation=sep)
    out = {"T": T_hot, "J_magnitude": J_hot, "min_separation_m": sep}
    if outdir is not None and bundle.comm.rank == 0:
        regions = {str(bundle.tags[nm]): nm for nm in bundle.volume_names()}
        write_hotspots_json(Path(outdir) / "hotspots.json", T_hot, J_hot,
                            meta={"min_separation_m": sep, "region_tags": regions})
    return out
