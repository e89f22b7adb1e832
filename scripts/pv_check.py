"""Open a busbarfem fields.xdmf in ParaView's Xdmf3ReaderT and print what it sees as JSON.

Run with ParaView's Python (``pvpython scripts/pv_check.py OUTDIR``; Debian: packages
``paraview`` and ``python3-paraview``, see scripts/install_paraview.sh). Prints
``{"reader", "file", "point_fields", "cell_fields", "fields", "times", "T_max", "T_max_time",
"n_points", "n_cells", "cell_types", "n_datasets"}`` (``n_datasets``: non-empty datasets the reader
returns, 1 for busbarfem's one-grid-per-time layout; VTK cell-type ids: 10 tetrahedron, 24 quadratic tetrahedron). The reader is ``Xdmf3ReaderT`` ("Xdmf3 Reader (Top Level
Partition)"): ParaView's default XDMF (v2) reader crashes on DOLFINx output.
"""

import json
import os
import sys

from paraview import servermanager
from paraview.simple import Xdmf3ReaderT


def _leaves(data):
    """The datasets of a (possibly composite) data object."""
    if data.IsA("vtkCompositeDataSet"):
        it = data.NewIterator()
        it.InitTraversal()
        while not it.IsDoneWithTraversal():
            yield it.GetCurrentDataObject()
            it.GoToNextItem()
    else:
        yield data


def _max_over_blocks(data, name):
    """Max of a point array over a dataset or every leaf of a composite dataset."""
    best = None
    for leaf in _leaves(data):
        arr = leaf.GetPointData().GetArray(name) if leaf is not None else None
        if arr is None or arr.GetNumberOfTuples() == 0:
            continue
        vmax = arr.GetRange(0)[1]
        best = vmax if best is None else max(best, vmax)
    return best


def _cell_types(data):
    """Sorted VTK cell type ids over every leaf (10: tetra, 24: quadratic tetra)."""
    types = set()
    for leaf in _leaves(data):
        if leaf is None or leaf.GetNumberOfCells() == 0:
            continue
        arr = leaf.GetDistinctCellTypesArray() if hasattr(leaf, "GetDistinctCellTypesArray") else None
        if arr is not None:
            types.update(int(arr.GetValue(i)) for i in range(arr.GetNumberOfTuples()))
        else:
            types.update(int(leaf.GetCellType(i)) for i in range(leaf.GetNumberOfCells()))
    return sorted(types)


def main(path):
    if os.path.isdir(path):
        path = os.path.join(path, "fields.xdmf")
    reader = Xdmf3ReaderT(FileName=[path])
    reader.UpdatePipelineInformation()
    times = [float(t) for t in (reader.TimestepValues or [])] if hasattr(reader, "TimestepValues") else []
    if not isinstance(times, list):
        times = [float(times)]
    last = times[-1] if times else 0.0
    reader.UpdatePipeline(time=last)
    point_fields = list(reader.PointData.keys())
    cell_fields = list(reader.CellData.keys())
    data = servermanager.Fetch(reader)
    info = reader.GetDataInformation()
    out = {
        "reader": "Xdmf3ReaderT",
        "file": os.path.abspath(path),
        "point_fields": point_fields,
        "cell_fields": cell_fields,
        "fields": sorted(set(point_fields) | set(cell_fields)),
        "times": times,
        "T_max": _max_over_blocks(data, "T") if "T" in point_fields else None,
        "T_max_time": last,
        "n_points": int(info.GetNumberOfPoints()),
        "n_cells": int(info.GetNumberOfCells()),
        "cell_types": _cell_types(data),
        "n_datasets": sum(1 for leaf in _leaves(data) if leaf is not None and leaf.GetNumberOfCells() > 0),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: pvpython scripts/pv_check.py OUTDIR|fields.xdmf")
    main(sys.argv[1])
