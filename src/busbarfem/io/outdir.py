"""Output folders: busbarfem only ever writes into, or clears, a folder it created itself.

A folder busbarfem creates (or adopts while it is empty) gets a marker file
:data:`MARKER`. The rules (also in docs/guarantees.md):

* never used as an output folder: the filesystem root, the home folder, the current
  folder or any of its ancestors, the case file's folder or any of its ancestors (checked
  after resolving symbolic links), and anything that is not a folder;
* a missing folder is created (with its parents) and marked; an existing empty folder is
  marked and used;
* a non-empty folder without the marker is refused (exit 2), with or without
  ``--overwrite``;
* a marked, non-empty folder is refused unless ``--overwrite`` is given; then only the
  entries busbarfem writes (:func:`is_output_entry`) are removed, anything else is kept.
  Symbolic links inside it are unlinked, never followed.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import time
from pathlib import Path

from busbarfem.errors import CaseError

MARKER = ".busbarfem-output"

# exact names and name patterns of everything busbarfem writes into an output folder
OUTPUT_NAMES = {
    MARKER, "case.resolved.yaml", "summary.json", "timeseries.csv", "hotspots.json", "profile.json",
    "report.html", "report.md", "report_files", "checkpoint", "mesh.xdmf", "mesh.h5", "preview.png",
    "regions.json", "mesh_quality.json", "critical_current.json", "critical_current.png",
    "paraview", "compare.md",
}
OUTPUT_PATTERNS = ("fields*.xdmf", "fields*.h5", "fields*.bp", ".fields*.partial", "*.json", "*.csv",
                   "*.png", "*.xdmf", "*.h5", "*.bp", "*.npz")


def is_output_entry(name: str) -> bool:
    """True if an entry of this name in a marked folder is a busbarfem output."""
    return name in OUTPUT_NAMES or any(fnmatch.fnmatchcase(name, p) for p in OUTPUT_PATTERNS)


def is_marked(path: Path) -> bool:
    """True if ``path`` is a folder busbarfem created (it holds the marker file)."""
    return (Path(path) / MARKER).is_file()


def _protected(real: Path, case_file: str | os.PathLike | None) -> str | None:
    """Why ``real`` (a resolved path) must never be an output folder, or None."""
    if real == Path(real.anchor):
        return "it is the filesystem root"
    try:
        home = Path.home().resolve()
    except (RuntimeError, KeyError, OSError):
        home = None
    if home is not None and real == home:
        return "it is your home folder"
    cwd = Path.cwd().resolve()
    if real == cwd or real in cwd.parents:
        return "it is the current folder or one of its parents"
    if case_file is not None:
        cdir = Path(case_file).resolve().parent
        if real == cdir or real in cdir.parents:
            return "it holds the case file (or is one of that folder's parents)"
    return None


def check_outdir(path: str | Path, overwrite: bool, case_file=None) -> tuple[str | None, list[str]]:
    """Decide whether ``path`` may be used as an output folder (no side effects).

    Returns:
        (error message or None, names of the entries ``--overwrite`` would remove).
    """
    if str(path).strip() == "":
        return "the output folder is an empty string; give -o a folder name", []
    path = Path(path)
    real = path.resolve()
    if path.is_symlink() and not real.exists():
        return f"output folder {path} is a symbolic link to {real}, which does not exist; give -o a folder", []
    why = _protected(real, case_file)
    shown = f"{path}" + (f" (= {real})" if str(real) != str(path) else "")
    if why:
        return (f"refusing to use {shown} as the output folder: {why}. "
                "Give -o a new folder, e.g. -o results/run1"), []
    if real.exists() and not real.is_dir():
        return f"output folder {shown} exists and is not a folder; give -o a new folder", []
    if not real.exists():
        return None, []
    try:
        entries = sorted(e.name for e in os.scandir(real))
    except OSError as exc:
        return f"cannot read output folder {shown}: {exc.strerror}", []
    if not entries:
        return None, []
    if not is_marked(real):
        return (f"output folder {shown} is not empty and was not created by busbarfem (no {MARKER} file); "
                "busbarfem never writes into or clears such a folder, even with --overwrite. "
                "Give -o a new or empty folder"), []
    if not overwrite:
        return (f"output folder {shown} holds the results of an earlier run; use --overwrite to replace "
                "them or -o another folder"), []
    return None, [n for n in entries if is_output_entry(n) and n != MARKER]


def _remove(entry: Path) -> None:
    if entry.is_symlink() or not entry.is_dir():
        entry.unlink()
    else:
        shutil.rmtree(entry)


def prepare(path: Path, overwrite: bool, case_file=None) -> list[str]:
    """Create, or clear for ``--overwrite``, the output folder ``path`` and mark it.

    Serial (call on one rank). Returns the names of the entries kept because they are not
    busbarfem outputs.

    Raises:
        CaseError: the folder may not be used (see the module docstring for why).
    """
    err, remove = check_outdir(path, overwrite, case_file)
    if err:
        raise CaseError(err)
    real = Path(path).resolve()
    try:
        for name in remove:
            _remove(real / name)
        real.mkdir(parents=True, exist_ok=True)
        marker = real / MARKER
        if not marker.exists():
            marker.write_text(json.dumps({"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                          "note": "folder created by busbarfem; --overwrite may clear its outputs"})
                              + "\n")
    except OSError as exc:
        raise CaseError(f"cannot prepare output folder {path}: {exc.strerror or exc}") from None
    return sorted(e.name for e in os.scandir(real) if e.name != MARKER)
