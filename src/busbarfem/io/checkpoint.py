"""Checkpoint and restart of a transient: temperature, cell and load-controller states.

The temperature is stored against the mesh's *input* node numbers (Gmsh's, independent
of the MPI partition), so a run may restart on any number of ranks. Files are written to
a temporary name and renamed, so a run killed while checkpointing leaves the previous
checkpoint intact; ``state.json`` is written last.

A checkpoint carries a fingerprint of what it belongs to, and a restart is refused
(:class:`~busbarfem.errors.CaseError`, exit 2, naming what differs) unless it matches:

* the case: every resolved case value except :data:`RESTART_MAY_CHANGE` (data files named
  by ``file``/``*_file`` keys count by their content, not their path);
* the mesh: a SHA-256 of the node coordinates in input order, of every cell's input node
  numbers and region tag in original cell order (both independent of the MPI partition),
  the global numbers of cells and nodes, and the temperature element and its global dof
  count.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import dolfinx_solver  # noqa: F401
import numpy as np
from mpi4py import MPI

from dolfinx import fem

from busbarfem.errors import CaseError

CHECKPOINT_DIR = "checkpoint"
FORMAT = 2
# case values a restart may change: they decide how long to run, what to write or how fast
# to mesh, not the state reached so far (the mesh itself is compared by its own fingerprint)
RESTART_MAY_CHANGE = ("name", "description", "solver.t_end", "output.every", "output.report",
                      "mesh.cache", "mesh.threads")


def _flatten(obj, key: str, out: dict) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(v, f"{key}.{k}" if key else str(k), out)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _flatten(v, f"{key}.{i}" if key else str(i), out)
        if not obj:
            out[key] = []
    else:
        out[key] = obj


def _file_digest(value: str, case_dir: Path | None) -> str:
    p = Path(value)
    if not p.is_absolute() and case_dir is not None:
        p = case_dir / p
    try:
        return "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest()
    except OSError:
        return f"unreadable file {value}"


def case_fingerprint(case, case_dir: Path | None = None) -> dict:
    """``{"sha256": ..., "values": {dotted key: value}}`` of the case values a restart must keep."""
    flat: dict = {}
    _flatten(case.model_dump(mode="json"), "", flat)
    vals = {}
    for k, v in flat.items():
        if any(k == m or k.startswith(m + ".") for m in RESTART_MAY_CHANGE):
            continue
        last = k.rsplit(".", 1)[-1]
        if isinstance(v, str) and (last == "file" or last.endswith("_file")):
            v = _file_digest(v, case_dir)
        vals[k] = v
    text = json.dumps(vals, sort_keys=True, separators=(",", ":"))
    return {"sha256": hashlib.sha256(text.encode()).hexdigest(), "values": vals}


def mesh_fingerprint(bundle, V: fem.FunctionSpace) -> dict:
    """Partition-independent identity of the mesh, its regions and the temperature space
    (collective; identical on every rank)."""
    msh = bundle.mesh
    comm = msh.comm
    nc = msh.topology.index_map(3).size_local
    dms = getattr(msh.geometry, "dofmaps", None)  # DOLFINx 0.11: a property (list); older: a method
    gdm = dms(0) if callable(dms) else dms[0] if dms is not None else msh.geometry.dofmap
    gidx = np.asarray(msh.geometry.input_global_indices, dtype=np.int64)
    cells = np.sort(gidx[np.asarray(gdm[:nc])], axis=1)
    orig = np.asarray(msh.topology.original_cell_index[:nc], dtype=np.int64)
    tags = np.full(nc, -1, dtype=np.int64)
    ct = bundle.cell_tags
    own = ct.indices < nc
    tags[ct.indices[own]] = ct.values[own]
    nn = msh.geometry.index_map().size_local
    x = np.ascontiguousarray(msh.geometry.x[:nn], dtype=np.float64)
    parts = comm.gather((gidx[:nn], x, orig, cells, tags), root=0)
    fp = None
    if comm.rank == 0:
        ni = np.concatenate([p[0] for p in parts])
        xx = np.concatenate([p[1] for p in parts])[np.argsort(ni, kind="stable")]
        ci = np.concatenate([p[2] for p in parts])
        o = np.argsort(ci, kind="stable")
        cc = np.concatenate([p[3] for p in parts])[o]
        tt = np.concatenate([p[4] for p in parts])[o]
        h = hashlib.sha256()
        for a in (np.sort(ni), xx, np.sort(ci), cc, tt):
            h.update(np.ascontiguousarray(a).tobytes())
        el = V.ufl_element()
        fp = {"sha256": h.hexdigest(), "cells": int(len(ci)), "nodes": int(len(ni)),
              "element": f"{getattr(el, 'family_name', 'Lagrange')} {el.embedded_superdegree}",
              "temperature_dofs": int(V.dofmap.index_map.size_global * V.dofmap.index_map_bs)}
    return comm.bcast(fp, root=0)


def _differences(old: dict, new: dict, limit: int = 8) -> str:
    keys = sorted(set(old) | set(new))
    diff = [k for k in keys if old.get(k, "<absent>") != new.get(k, "<absent>")]
    shown = "; ".join(f"{k}: {old.get(k, '<absent>')!r} in the checkpoint, {new.get(k, '<absent>')!r} now"
                      for k in diff[:limit])
    return shown + (f"; and {len(diff) - limit} more" if len(diff) > limit else "")


def read_state(outdir) -> dict:
    """Check that ``outdir`` holds a complete, readable checkpoint and return its state
    (serial; call on one rank).

    Raises:
        CaseError: missing folder or files, truncated or corrupt data, older format.
    """
    if outdir is None or str(outdir).strip() == "":
        raise CaseError("--restart needs the output folder of an earlier run "
                        "(run it with --checkpoint-every N first)")
    d = Path(outdir) / CHECKPOINT_DIR
    if not Path(outdir).is_dir():
        raise CaseError(f"--restart {outdir}: no such folder")
    if not (d / "state.json").is_file() or not (d / "temperature.npz").is_file():
        raise CaseError(f"no checkpoint in {outdir} (expected {d}/state.json and temperature.npz; "
                        "run with --checkpoint-every N first)")
    try:
        state = json.loads((d / "state.json").read_text())
        if not isinstance(state, dict):
            raise ValueError("not a JSON object")
        for k in ("t", "step", "dt", "rows"):
            if not isinstance(state.get(k), (int, float)) or not np.isfinite(state[k]):
                raise ValueError(f"'{k}' missing or not a number")
        for k, types in (("controller", dict), ("events", list), ("cells", (dict, type(None))),
                         ("monitor", (dict, type(None)))):
            if not isinstance(state.get(k), types):
                raise ValueError(f"'{k}' missing or of the wrong type")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CaseError(f"checkpoint {d / 'state.json'} is corrupt or truncated ({exc}); "
                        "restart from a copy or run again without --restart") from None
    fp = state.get("fingerprint")
    if state.get("format") != FORMAT or not (isinstance(fp, dict) and isinstance(fp.get("case"), dict)
                                             and isinstance(fp.get("mesh"), dict)):
        raise CaseError(f"checkpoint {d} was written by an older busbarfem without a case/mesh fingerprint; "
                        "it cannot be verified, run again without --restart")
    try:
        with np.load(d / "temperature.npz") as z:
            idx, T = np.asarray(z["index"]), np.asarray(z["T"])
        if idx.ndim != 1 or idx.shape != T.shape or idx.dtype.kind not in "iu" or T.dtype.kind != "f":
            raise ValueError("arrays of the wrong shape or type")
        if len(idx) and (np.any(np.diff(idx) <= 0) or idx[0] < 0):
            raise ValueError("node numbers not strictly increasing")
        if not np.all(np.isfinite(T)):
            raise ValueError("temperature contains NaN/inf")
        if len(idx) != state["fingerprint"]["mesh"]["temperature_dofs"]:
            raise ValueError(f"{len(idx)} values for {state['fingerprint']['mesh']['temperature_dofs']} dofs")
    except (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        raise CaseError(f"checkpoint {d / 'temperature.npz'} is corrupt or truncated ({exc}); "
                        "restart from a copy or run again without --restart") from None
    return state


def verify_case(state: dict, case, case_dir: Path | None = None, where: str = "") -> None:
    """Raise CaseError unless the checkpoint's case fingerprint matches ``case``."""
    old = state["fingerprint"]["case"]
    new = case_fingerprint(case, case_dir)
    if old.get("sha256") != new["sha256"]:
        allowed = ", ".join(RESTART_MAY_CHANGE)
        diff = _differences(old.get("values") or {}, new["values"]) or "the fingerprint differs"
        raise CaseError(f"the checkpoint in {where} belongs to a different case: {diff}. "
                        f"A restart may change only {allowed}; run again without --restart "
                        "(or restore the original values)")


def verify_mesh(state: dict, fp: dict, where: str = "") -> None:
    """Raise CaseError unless the checkpoint's mesh fingerprint equals ``fp``."""
    old = state["fingerprint"]["mesh"]
    if old != fp:
        parts = [f"{k}: {old.get(k)!r} in the checkpoint, {fp.get(k)!r} now" for k in fp if old.get(k) != fp[k]
                 and k != "sha256"]
        detail = "; ".join(parts) if parts else "same sizes but different node coordinates, cells or regions"
        raise CaseError(f"the checkpoint in {where} was computed on a different mesh ({detail}), e.g. from a "
                        "changed geometry file, mesher version or mesh options; run again without --restart")


def _input_indices(fn: fem.Function) -> np.ndarray:
    """Input (Gmsh) node number of every local dof of a Lagrange function whose degree
    equals the mesh geometry degree (P1 on linear meshes, P2 on quadratic ones)."""
    V = fn.function_space
    msh = V.mesh
    dms = getattr(msh.geometry, "dofmaps", None)  # DOLFINx 0.11: a property (list); older: a method
    gdm = dms(0) if callable(dms) else dms[0] if dms is not None else msh.geometry.dofmap
    vdm = V.dofmap.list
    n = len(fn.x.array)
    idx = np.full(n, -1, dtype=np.int64)
    idx[vdm.ravel()] = msh.geometry.input_global_indices[gdm.ravel()]
    return idx


def save(outdir: Path, comm, T: fem.Function, state: dict) -> None:
    """Write the checkpoint (collective). ``state`` should hold a ``fingerprint``
    ({"case": case_fingerprint(), "mesh": mesh_fingerprint()}) for the restart checks."""
    nown = T.function_space.dofmap.index_map.size_local
    idx = _input_indices(T)[:nown]
    vals = T.x.array[:nown]
    all_idx = comm.gather(idx, root=0)
    all_vals = comm.gather(vals, root=0)
    if comm.rank == 0:
        d = Path(outdir) / CHECKPOINT_DIR
        d.mkdir(parents=True, exist_ok=True)
        gi = np.concatenate(all_idx)
        gv = np.concatenate(all_vals)
        order = np.argsort(gi)
        tmp = d / "temperature.tmp.npz"
        with open(tmp, "wb") as f:
            np.savez(f, index=gi[order], T=gv[order])
        os.replace(tmp, d / "temperature.npz")
        tmpj = d / "state.tmp.json"
        tmpj.write_text(json.dumps({"format": FORMAT, **state}, indent=1))
        os.replace(tmpj, d / "state.json")
    comm.barrier()


def exists(outdir: Path) -> bool:
    """True if ``outdir`` holds a complete, readable checkpoint."""
    try:
        read_state(outdir)
    except CaseError:
        return False
    return True


def load(outdir: Path, comm, T: fem.Function, mesh_fp: dict | None = None) -> dict:
    """Fill ``T`` from the checkpoint and return the saved state dict (collective).

    Raises:
        CaseError: (on every rank) the checkpoint is unreadable, or ``mesh_fp`` (from
            :func:`mesh_fingerprint`) differs from the mesh it was written on.
    """
    d = Path(outdir) / CHECKPOINT_DIR
    data, err = None, None
    if comm.rank == 0:
        try:
            state = read_state(outdir)
            if mesh_fp is not None:
                verify_mesh(state, mesh_fp, str(outdir))
            with np.load(d / "temperature.npz") as z:
                data = (z["index"], z["T"], state)
        except CaseError as exc:
            err = exc.message
    err = comm.bcast(err, root=0)
    if err:
        raise CaseError(err)
    gi, gv, state = comm.bcast(data, root=0)
    idx = _input_indices(T)
    pos = np.searchsorted(gi, idx)
    pos = np.clip(pos, 0, len(gi) - 1)
    ok = bool(np.all(gi[pos] == idx)) and len(gi) == T.function_space.dofmap.index_map.size_global
    if not comm.allreduce(ok, op=MPI.LAND):
        raise CaseError(f"the checkpoint in {outdir} does not match this mesh (different geometry or mesh options)")
    T.x.array[:] = gv[pos]
    T.x.scatter_forward()
    return state
