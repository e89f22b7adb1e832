"""Mesh cache: ``<key>.msh`` plus a ``<key>.json`` sidecar holding the GeometryInfo.

The folder is per user (:func:`busbarfem.mesh.default_cache_dir`: ``$BUSBARFEM_MESH_CACHE``
or the XDG cache folder); a cache that cannot be written is skipped with a warning.

The key hashes the geometry and mesh models' JSON, the content of any referenced input
file, the gmsh version and :data:`BUILDER_VERSION` (bump it when a builder changes what
it produces for the same input).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path

import gmsh

from busbarfem.naming import GeometryInfo, RegionInfo

BUILDER_VERSION = "3"  # 2: module plates cut per row, meshed by instancing; 3: no $Periodic
MAX_SIDECAR_BYTES = 64 * 1024 * 1024
log = logging.getLogger(__name__)


def cache_key(geometry_json: dict, mesh_json: dict, files: list[Path]) -> str:
    """Hash of everything that determines the mesh."""
    h = hashlib.sha256()
    mesh_json = {k: v for k, v in mesh_json.items() if k != "cache"}
    h.update(json.dumps({"geometry": geometry_json, "mesh": mesh_json,
                         "gmsh": gmsh.__version__, "builder": BUILDER_VERSION},
                        sort_keys=True).encode())
    for f in files:
        h.update(Path(f).read_bytes())
    return h.hexdigest()[:24]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def discard(cache_dir: Path, key: str) -> None:
    """Delete a cache entry (both files); missing files are fine."""
    for name in (f"{key}.msh", f"{key}.json"):
        with contextlib.suppress(OSError):
            (Path(cache_dir) / name).unlink()


def load(cache_dir: Path, key: str) -> GeometryInfo | None:
    """Merge a cached mesh into the current (empty) model; None on a miss.

    A corrupt entry (truncated or edited ``.msh``, unreadable or incomplete sidecar, a
    ``.msh`` whose SHA-256 differs from the one the sidecar recorded, a FIFO or folder in
    its place) is logged, deleted and treated as a miss, so the mesh is rebuilt.
    """
    msh, side = Path(cache_dir) / f"{key}.msh", Path(cache_dir) / f"{key}.json"
    if not (msh.exists() or side.exists()):
        return None
    try:
        if not (msh.is_file() and side.is_file()):
            raise ValueError("one of the two files is missing or not a regular file")
        if side.stat().st_size > MAX_SIDECAR_BYTES:
            raise ValueError("sidecar too large")
        data = json.loads(side.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not {"parameters", "volumes", "regions"} <= set(data):
            raise ValueError("sidecar lacks parameters/volumes/regions")
        if data.get("msh_sha256") != _sha256(msh):
            raise ValueError("mesh file does not match the checksum in its sidecar")
        info = GeometryInfo(parameters=dict(data["parameters"]), volumes=dict(data["volumes"]))
        for r in data["regions"]:
            info.add(RegionInfo(**r))
        read_back(msh)
        if not gmsh.model.getEntities(3) or not gmsh.model.mesh.getElementTypes(3):
            raise ValueError("no volume elements in the cached mesh")
    except Exception as exc:  # noqa: BLE001 - any corruption means: rebuild
        log.warning("mesh cache entry %s is corrupt (%s); discarded, rebuilding", key, exc)
        discard(cache_dir, key)
        name = gmsh.model.getCurrent()
        gmsh.clear()
        gmsh.model.add(name or "rebuild")
        return None
    info.parameters["cache"] = {"key": key, "hit": True, "path": str(msh)}
    return info


def read_back(msh: Path) -> None:
    """Replace the current gmsh model by the mesh file ``msh`` (same model name).

    The one way a mesh reaches DOLFINx: a freshly meshed model is written and read back
    through here exactly as a cached one is (:func:`round_trip`), so a run does not depend
    on whether its mesh was just made or found in the cache (the node and element order of
    gmsh's in-memory model and of its file differ, which moved results by 1e-10).
    """
    name = gmsh.model.getCurrent()
    gmsh.clear()
    gmsh.model.add(name)
    gmsh.merge(str(msh))


def round_trip(cache_dir: Path | None, key: str, info: GeometryInfo) -> Path | None:
    """Write the freshly meshed current model and read it back (:func:`read_back`).

    Into the cache when ``cache_dir`` is given and writable (returns the ``.msh`` path),
    else through a temporary file that is deleted again (returns None).
    """
    path = store(cache_dir, key, info) if cache_dir is not None else None
    if path is not None:
        read_back(path)
        return path
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bbf_mesh_") as tmp:
        msh = Path(tmp) / f"{key}.msh"
        _write_msh(msh)
        read_back(msh)
    return None


def _write_msh(path: Path) -> None:
    """Write the current model's mesh as binary MSH 4.1, without its ``$Periodic`` section.

    gmsh's reader recomputes the nodes of periodic copies from their masters' through the
    stored affine transforms (1372 of 3501 nodes of the instanced 1s4p module moved by an
    ulp), in an order that depends on the process's memory layout, so two reads of one file
    gave different meshes. The solver needs no periodicity: the copies' nodes are stored
    as meshed, and read back exactly.
    """
    gmsh.option.setNumber("Mesh.SaveAll", 0)
    gmsh.option.setNumber("Mesh.MshFileVersion", 4.1)
    gmsh.option.setNumber("Mesh.Binary", 1)
    gmsh.write(str(path))
    _strip_periodic(path)


def _strip_periodic(path: Path) -> None:
    """Remove the ``$Periodic`` ... ``$EndPeriodic`` section of an MSH 4.1 file, if any.

    The section follows ``$EndElements`` (format order), so the markers are searched at
    line starts after that one.
    """
    data = Path(path).read_bytes()
    start = data.find(b"\n$Periodic\n", data.rfind(b"\n$EndElements\n"))
    if start < 0:
        return
    end = data.find(b"\n$EndPeriodic\n", start)
    if end < 0:
        raise OSError(f"{path}: $Periodic section without its end")
    Path(path).write_bytes(data[:start + 1] + data[end + len(b"\n$EndPeriodic\n"):])


def store(cache_dir: Path, key: str, info: GeometryInfo) -> Path | None:
    """Write the current model's mesh and its GeometryInfo (atomically via rename).

    Returns the ``.msh`` path, or None when the folder is not writable (warned, not fatal:
    the cache only saves time).
    """
    try:
        return _store(Path(cache_dir), key, info)
    except OSError as exc:
        log.warning("mesh cache %s not written (%s); set BUSBARFEM_MESH_CACHE to a writable "
                    "folder or run with --no-cache", cache_dir, exc.strerror or exc)
        return None


def _store(cache_dir: Path, key: str, info: GeometryInfo) -> Path:
    cache_dir.mkdir(parents=True, exist_ok=True)
    msh = cache_dir / f"{key}.msh"
    tmp = cache_dir / f".{key}.{os.getpid()}.msh"
    _write_msh(tmp)
    digest = _sha256(tmp)
    tmp.replace(msh)
    side = {"regions": [r.to_dict() for r in info.regions.values()],
            "parameters": info.parameters, "volumes": info.volumes, "msh_sha256": digest}
    tmp_side = cache_dir / f".{key}.{os.getpid()}.json"
    tmp_side.write_text(json.dumps(side, indent=1, sort_keys=True))
    tmp_side.replace(cache_dir / f"{key}.json")
    return msh
