"""Checkpoint and restart of a transient: temperature, cell and load-controller states.

The temperature is stored against the mesh's *input* node numbers (Gmsh's, independent
of the MPI partition), so a run may restart on any number of ranks. Files are written to
a temporary name and renamed, so a run killed while checkpointing leaves the previous
checkpoint intact.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dolfinx_solver  # noqa: F401
import numpy as np

from dolfinx import fem

CHECKPOINT_DIR = "checkpoint"


def _input_indices(fn: fem.Function) -> np.ndarray:
    """Input (Gmsh) node number of every local dof of a Lagrange function whose degree
    equals the mesh geometry degree (P1 on linear meshes, P2 on quadratic ones)."""
    V = fn.function_space
    msh = V.mesh
    gdm = msh.geometry.dofmaps(0) if callable(getattr(msh.geometry, "dofmaps", None)) else msh.geometry.dofmap
    vdm = V.dofmap.list
    n = len(fn.x.array)
    idx = np.full(n, -1, dtype=np.int64)
    idx[vdm.ravel()] = msh.geometry.input_global_indices[gdm.ravel()]
    return idx


def save(outdir: Path, comm, T: fem.Function, state: dict) -> None:
    """Write the checkpoint (collective)."""
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
        tmpj.write_text(json.dumps(state, indent=1))
        os.replace(tmpj, d / "state.json")
    comm.barrier()


def exists(outdir: Path) -> bool:
    """True if ``outdir`` holds a complete checkpoint."""
    d = Path(outdir) / CHECKPOINT_DIR
    return (d / "temperature.npz").is_file() and (d / "state.json").is_file()


def load(outdir: Path, comm, T: fem.Function) -> dict:
    """Fill ``T`` from the checkpoint and return the saved state dict (collective)."""
    d = Path(outdir) / CHECKPOINT_DIR
    data = None
    if comm.rank == 0:
        with np.load(d / "temperature.npz") as z:
            data = (z["index"], z["T"], json.loads((d / "state.json").read_text()))
    gi, gv, state = comm.bcast(data, root=0)
    idx = _input_indices(T)
    pos = np.searchsorted(gi, idx)
    pos = np.clip(pos, 0, len(gi) - 1)
    if not np.all(gi[pos] == idx):
        raise ValueError("checkpoint does not match this mesh (different geometry or mesh options)")
    T.x.array[:] = gv[pos]
    T.x.scatter_forward()
    return state
