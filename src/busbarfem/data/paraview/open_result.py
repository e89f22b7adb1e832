"""Open a busbarfem result in ParaView: log |J|, the hottest region, a slice through the hot spot.

Written by busbarfem into ``<output>/paraview/``. Run it

* in the ParaView GUI: View > Python Shell > Run Script (or ``paraview --script=open_result.py``):
  builds the pipeline (reader, Threshold of the hottest region, Slice through the hot spot);
* headless: ``pvpython --force-offscreen-rendering open_result.py --screenshots DIR`` also saves
  ``J_log.png``, ``hottest_region.png``, ``slice_hotspot.png`` and ``pv_result.json`` in DIR.
  Debian's ParaView 5.11 renders through X only: without a display use
  ``python -m busbarfem.io.paraview OUTDIR`` (starts a private Xvfb).

The fields file is ``../fields.xdmf`` (or the newest ``../fields_restart<k>.xdmf``), read with
the "Xdmf3 Reader (Top Level Partition)" (Xdmf3ReaderT): one grid per output time carrying
every field, so Threshold on ``region_id`` keeps T, |J| and the rest. The last output time
is shown. The hottest region is the region of a cell touching the node of maximum T.
"""

import glob
import json
import os
import re
import sys

from paraview import servermanager
from paraview.simple import (ColorBy, CreateView, GetColorTransferFunction, GetScalarBar, MergeBlocks,
                             SaveScreenshot, SetActiveView, Show, Slice, Threshold, Xdmf3ReaderT)
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkIdList

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def fields_file(outdir):
    """fields.xdmf, or the newest fields_restart<k>.xdmf after a restart."""
    restarts = glob.glob(os.path.join(outdir, "fields_restart*.xdmf"))
    if restarts:
        return max(restarts, key=lambda p: int(re.findall(r"(\d+)\.xdmf$", p)[0]))
    return os.path.join(outdir, "fields.xdmf")


def region_names(outdir):
    """{tag: name} from hotspots.json when the run wrote one."""
    try:
        with open(os.path.join(outdir, "hotspots.json")) as f:
            return {int(k): v for k, v in json.load(f).get("region_tags", {}).items()}
    except (OSError, ValueError):
        return {}


def array(data, kind, name):
    """A point/cell array of a vtk dataset as numpy (None if absent)."""
    a = (data.GetPointData() if kind == "POINTS" else data.GetCellData()).GetArray(name)
    return None if a is None else vtk_to_numpy(a)


def log_range(values):
    """Colour range of log |J|: 1st percentile of the positive values to the maximum."""
    pos = values[values > 0]
    if not len(pos):
        return 1e-12, 1.0
    hi = float(pos.max())
    lo = float(np.percentile(pos, 1.0))
    return (lo if lo < hi else hi / 10.0), hi


def style_view(view, size):
    view.ViewSize = size
    view.Background = [1.0, 1.0, 1.0]
    try:
        view.UseColorPaletteForBackground = 0
    except AttributeError:
        pass
    view.OrientationAxesVisibility = 1


def scalar_bar(view, lut, title):
    bar = GetScalarBar(lut, view)
    bar.Title = title
    bar.ComponentTitle = ""
    bar.TitleColor = [0, 0, 0]
    bar.LabelColor = [0, 0, 0]
    bar.Visibility = 1
    return bar


def isometric(view):
    view.CameraPosition = [1.0, -1.0, 1.0]
    view.CameraFocalPoint = [0.0, 0.0, 0.0]
    view.CameraViewUp = [0.0, 0.0, 1.0]
    view.ResetCamera()


def main(argv):
    outdir = os.path.dirname(HERE)
    shots = None
    if "--screenshots" in argv:
        shots = os.path.abspath(argv[argv.index("--screenshots") + 1])
        os.makedirs(shots, exist_ok=True)
    if "--outdir" in argv:
        outdir = os.path.abspath(argv[argv.index("--outdir") + 1])
    path = fields_file(outdir)
    names = region_names(outdir)
    reader = Xdmf3ReaderT(registrationName=os.path.basename(path), FileName=[path])
    reader.UpdatePipelineInformation()
    times = list(reader.TimestepValues or []) if hasattr(reader, "TimestepValues") else []
    t = float(times[-1]) if times else 0.0
    merged = MergeBlocks(Input=reader)
    merged.UpdatePipeline(t)
    data = servermanager.Fetch(merged)
    T = array(data, "POINTS", "T")
    J = array(data, "CELLS", "J_magnitude")
    rid = array(data, "CELLS", "region_id")
    ipt = int(np.argmax(T))
    hot_point = [float(c) for c in data.GetPoint(ipt)]
    data.BuildLinks()
    ids = vtkIdList()
    data.GetPointCells(ipt, ids)
    tags = sorted({int(round(rid[ids.GetId(k)])) for k in range(ids.GetNumberOfIds())})
    tag = tags[0]

    th = Threshold(registrationName="hottest region", Input=reader)
    th.Scalars = ["CELLS", "region_id"]
    th.LowerThreshold = tag - 0.5
    th.UpperThreshold = tag + 0.5
    try:
        th.ThresholdMethod = "Between"
    except AttributeError:
        pass
    th.UpdatePipeline(t)
    th_data = servermanager.Fetch(MergeBlocks(Input=th))
    thT = array(th_data, "POINTS", "T")
    thJ = array(th_data, "CELLS", "J_magnitude")
    th_fields = sorted({th_data.GetPointData().GetArrayName(k) for k in range(th_data.GetPointData().GetNumberOfArrays())}
                       | {th_data.GetCellData().GetArrayName(k) for k in range(th_data.GetCellData().GetNumberOfArrays())})

    # slice normal: the axis of intermediate extent (along a plate, through its thickness)
    b = data.GetBounds()
    ext = [b[1] - b[0], b[3] - b[2], b[5] - b[4]]
    axis = sorted(range(3), key=lambda k: ext[k])[1]
    normal = [0.0, 0.0, 0.0]
    normal[axis] = 1.0
    sl = Slice(registrationName="slice through the hot spot", Input=reader)
    sl.SliceType = "Plane"
    sl.SliceType.Origin = hot_point
    sl.SliceType.Normal = normal
    sl.UpdatePipeline(t)

    jlo, jhi = log_range(J)
    tlo, thi = float(T.min()), float(T.max())
    size = [1200, 800]
    images = []

    vJ = CreateView("RenderView")
    style_view(vJ, size)
    vJ.ViewTime = t
    d = Show(reader, vJ)
    ColorBy(d, ("CELLS", "J_magnitude"))
    lut = GetColorTransferFunction("J_magnitude")
    lut.ApplyPreset("Viridis (matplotlib)", True)
    lut.AutomaticRescaleRangeMode = "Never"
    lut.RescaleTransferFunction(jlo, jhi)
    lut.MapControlPointsToLogSpace()
    lut.UseLogScale = 1
    scalar_bar(vJ, lut, "|J| [A/m^2], log scale")
    isometric(vJ)

    vH = CreateView("RenderView")
    style_view(vH, size)
    vH.ViewTime = t
    d = Show(th, vH)
    ColorBy(d, ("POINTS", "T"))
    lutT = GetColorTransferFunction("T")
    lutT.ApplyPreset("Inferno (matplotlib)", True)
    lutT.AutomaticRescaleRangeMode = "Never"
    lutT.RescaleTransferFunction(tlo, thi if thi > tlo else tlo + 1.0)
    scalar_bar(vH, lutT, "T [K]")
    label = names.get(tag, f"region {tag}")
    isometric(vH)

    vS = CreateView("RenderView")
    style_view(vS, size)
    vS.ViewTime = t
    d = Show(sl, vS)
    ColorBy(d, ("POINTS", "T"))
    scalar_bar(vS, lutT, "T [K]")
    vS.CameraFocalPoint = hot_point
    vS.CameraPosition = [hot_point[k] + normal[k] for k in range(3)]
    up = [0.0, 0.0, 0.0]
    up[sorted(range(3), key=lambda k: ext[k])[0]] = 1.0
    vS.CameraViewUp = up
    vS.ResetCamera()
    SetActiveView(vJ)

    if shots:
        for name, view in (("J_log.png", vJ), ("hottest_region.png", vH), ("slice_hotspot.png", vS)):
            target = os.path.join(shots, name)
            SaveScreenshot(target, view, ImageResolution=size)
            images.append(target)
    result = {
        "file": path, "time": t, "times": [float(x) for x in times],
        "hot_point": hot_point, "hot_region_tag": tag, "hot_region": label,
        "T_max": float(T.max()), "J_log_range": [jlo, jhi],
        "J_positive_range": [float(J[J > 0].min()) if (J > 0).any() else 0.0, float(J.max())],
        "threshold": {"fields": th_fields, "n_cells": int(th_data.GetNumberOfCells()),
                      "T_max": float(thT.max()), "T_min": float(thT.min()),
                      "J_magnitude_max": float(thJ.max()), "J_magnitude_min": float(thJ.min())},
        "slice": {"origin": hot_point, "normal": normal}, "images": images,
    }
    text = json.dumps(result)
    if shots:
        with open(os.path.join(shots, "pv_result.json"), "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
