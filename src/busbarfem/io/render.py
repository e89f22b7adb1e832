"""Off-screen pyvista renders of the written fields (read back from ``fields.xdmf``/``.h5``).

Runs on rank 0 alone after the solve: the fields are read with h5py (see
:mod:`busbarfem.io.readback`), never through DOLFINx. Rendering needs an OpenGL context
without a display; VTK's wheel gets one from EGL (Mesa ``libEGL``, present on the Debian
machines this project runs on). Whether that works is probed once in a child process
(:func:`render_available`), because a VTK that cannot make a context may abort the
process instead of raising; callers skip the renders with the probe's reason when it fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from busbarfem.io import readback

#: scalar-bar titles and colour maps of the fields we render.
FIELD_STYLE = {
    "T": ("T [K]", "inferno"),
    "J_magnitude": ("|J| [A/m^2]", "viridis"),
    "q": ("q [W/m^3]", "magma"),
    "phi": ("phi [V]", "coolwarm"),
}

_PROBE = (
    "import pyvista as pv\n"
    "pv.OFF_SCREEN = True\n"
    "p = pv.Plotter(off_screen=True, window_size=(64, 48))\n"
    "p.add_mesh(pv.Sphere())\n"
    "img = p.screenshot(None, return_img=True)\n"
    "p.close()\n"
    "assert img.std() > 0, 'blank image'\n"
    "print('ok')\n"
)


def prefer_egl() -> None:
    """Without a display, ask VTK for its EGL window directly (skips a failed X attempt
    and its warning)."""
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")


#: the thread of :func:`probe_in_background`, once started
_probe_thread: threading.Thread | None = None


def probe_in_background() -> None:
    """Start :func:`render_available`'s probe in a thread and return at once, so its child
    process (1.2 s here, mostly the interpreter and VTK start-up) overlaps the caller's other
    work (the report's plots); no-op if the probe was started or its answer is known."""
    global _probe_thread
    if _probe_thread is None and _probe.cache_info().currsize == 0:
        _probe_thread = threading.Thread(target=_probe, name="render-probe", daemon=True)
        _probe_thread.start()


def render_available() -> tuple[bool, str]:
    """(True, "") if an off-screen render works here, else (False, reason).

    Probed once per process in a child process (VTK may abort without an OpenGL context);
    waits for a probe :func:`probe_in_background` started.
    """
    if _probe_thread is not None:
        _probe_thread.join()
    return _probe()


@lru_cache(maxsize=1)
def _probe() -> tuple[bool, str]:
    """The probe of :func:`render_available` (cached)."""
    try:
        import pyvista  # noqa: F401
    except ImportError as exc:
        return False, f"pyvista is not importable: {exc}"
    prefer_egl()
    try:
        res = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PYVISTA_OFF_SCREEN": "true"})
    except subprocess.TimeoutExpired:
        return False, "off-screen render probe timed out"
    if res.returncode == 0 and "ok" in res.stdout:
        return True, ""
    tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
    return False, ("off-screen rendering does not work here (VTK needs EGL, OSMesa or an X display; "
                   "on Debian install libegl1 and libgl1, or run under xvfb-run): " + " | ".join(tail))


@dataclass
class RenderInfo:
    """What was drawn, in image pixels (row 0 at the top) for checks."""

    png: Path
    field: str
    time: float
    value_range: tuple[float, float]
    markers_px: list[tuple[float, float]] = field(default_factory=list)
    bbox_px: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # umin, vmin, umax, vmax
    image_size: tuple[int, int] = (0, 0)  # width, height
    clip_origin: list[float] | None = None
    clip_normal: list[float] | None = None
    clim: tuple[float, float] = (0.0, 1.0)  # colour-scale range
    log_scale: bool = False
    crowding_threshold: float | None = None  # |J| above which cells are outlined as crowding
    crowding_cells: int = 0


def to_pyvista(mesh: readback.Grid):
    """An UnstructuredGrid of the written mesh (corner nodes: linear tets/hexes/triangles)."""
    import pyvista as pv

    cells = mesh.cells
    k = cells.shape[1]
    if k in (4, 10):  # tetrahedra (P2: the first four nodes are the vertices)
        ctype, conn = pv.CellType.TETRA, cells[:, :4]
    elif k in (8, 27):  # DOLFINx hexahedra use tensor-product vertex order
        ctype, conn = pv.CellType.HEXAHEDRON, cells[:, [0, 1, 3, 2, 4, 5, 7, 6]]
    elif k in (3, 6):
        ctype, conn = pv.CellType.TRIANGLE, cells[:, :3]
    else:
        raise ValueError(f"unsupported cell with {k} nodes")
    return pv.UnstructuredGrid({ctype: np.ascontiguousarray(conn)}, mesh.points)


def load_grid(outdir, field_name: str, index: int = -1):
    """(grid with the field attached as the active scalars, time, scalar name)."""
    mesh, values, t = readback.read_field(outdir, field_name, index)
    grid = to_pyvista(mesh)
    if values.ndim == 2:
        values = np.linalg.norm(values, axis=1)
    name = field_name
    if len(values) == grid.n_points and len(values) != grid.n_cells:
        grid.point_data[name] = values
    else:
        grid.cell_data[name] = values
    grid.set_active_scalars(name)
    return grid, t, name


def clip_normal_for(bounds) -> np.ndarray:
    """Unit normal of the cut: the axis of intermediate extent.

    For a plate-like part (thin in one direction) this cuts along the length through its
    thickness, which shows how heat leaves a weld or bolt through the plate.
    """
    ext = np.array([bounds[1] - bounds[0], bounds[3] - bounds[2], bounds[5] - bounds[4]])
    axis = int(np.argsort(ext)[1])
    nrm = np.zeros(3)
    nrm[axis] = 1.0
    return nrm


def log_clim(values: np.ndarray, q: float = 1.0) -> tuple[float, float]:
    """Colour range for a log scale: the ``q``-th percentile of the positive values to the
    maximum (a few near-zero cells do not squash the rest into one colour)."""
    pos = np.asarray(values, dtype=float)
    pos = pos[np.isfinite(pos) & (pos > 0)]
    if not len(pos):
        return (1e-12, 1.0)
    hi = float(pos.max())
    lo = float(np.percentile(pos, q))
    return (lo if lo < hi else hi / 10.0, hi)


def _digits(clim) -> int:
    """Significant digits that tell the ends of a linear colour range apart (at least 4)."""
    lo, hi = float(clim[0]), float(clim[1])
    scale = max(abs(lo), abs(hi))
    if hi <= lo or scale == 0:
        return 4
    return int(min(8, max(4, np.ceil(np.log10(scale / (hi - lo))) + 2)))


def _marker_points(markers) -> np.ndarray:
    if markers is None:
        return np.zeros((0, 3))
    pts = [m["x"] if isinstance(m, dict) else m for m in markers]
    return np.asarray(pts, dtype=float).reshape(-1, 3)


def _project(plotter, pts: np.ndarray, height: int) -> list[tuple[float, float]]:
    ren = plotter.renderer
    out = []
    for p in pts:
        ren.SetWorldPoint(float(p[0]), float(p[1]), float(p[2]), 1.0)
        ren.WorldToDisplay()
        u, v, _ = ren.GetDisplayPoint()
        out.append((float(u), float(height - v)))
    return out


def render_field(outdir, field: str, png, markers=None, clip_through=None, title: str | None = None,
                 window_size=(1200, 800), index: int = -1, zoom: float = 0.12, log_scale: bool | None = None,
                 crowding: float | None = None, regions=None, top_view: bool = False) -> RenderInfo:
    """Render one stored field of ``outdir/fields.xdmf`` to ``png`` off-screen.

    Args:
        outdir: the run's output folder.
        field: stored field name (vectors are drawn as their magnitude).
        png: image path to write.
        markers: hot spots to mark, ``[{"x": [..], ...}, ...]`` or an (n, 3) array; they are
            numbered 1..n in the given order.
        clip_through: a point [m]; if given, the geometry is cut by a plane through it
            (normal: :func:`clip_normal_for`) and the cut face is shown.
        title: text in the upper-left corner.
        window_size: image size in pixels (width, height).
        index: stored time index (default the last).
        zoom: half-height of the clipped view as a fraction of the bounding-box diagonal.
        log_scale: colour on a log scale (:func:`log_clim` range); default: True for
            ``J_magnitude``, whose weld or corner peak otherwise sets a linear range alone.
        crowding: outline (magenta) the cells whose value is at least this fraction of the
            maximum, the current-crowding region (default 0.5 for ``J_magnitude`` without a
            clip, else none).
        regions: draw only the cells of these region tags (the stored ``region_id``); the
            colour range is then the range of the field on those cells.
        top_view: look down the z axis (parallel projection) instead of the isometric view.

    Returns:
        A :class:`RenderInfo` with the marker and bounding-box positions in pixels.
    """
    prefer_egl()
    import pyvista as pv

    pv.OFF_SCREEN = True
    png = Path(png)
    grid, t, name = load_grid(outdir, field, index)
    if regions is not None:
        _, rid, _ = readback.read_last(outdir, "region_id")
        keep = np.flatnonzero(np.isin(np.rint(rid).astype(int), [int(r) for r in regions]))
        if not len(keep):
            raise ValueError(f"no cells of region tags {list(regions)} in the field file")
        grid = grid.extract_cells(keep)
        grid.set_active_scalars(name)
    data = grid.active_scalars
    if log_scale is None:
        log_scale = field == "J_magnitude"
    if crowding is None and field == "J_magnitude" and clip_through is None:
        crowding = 0.5
    if log_scale:
        clim = log_clim(data)
    else:
        clim = (float(np.min(data)), float(np.max(data)))
        if clim[0] == clim[1]:
            clim = (clim[0] - 0.5, clim[1] + 0.5)
    bar_title, cmap = FIELD_STYLE.get(field, (field, "viridis"))
    if log_scale:
        bar_title += " (log)"
    surf = grid.extract_surface(algorithm="dataset_surface")
    bounds = grid.bounds
    diag = float(np.linalg.norm([bounds[1] - bounds[0], bounds[3] - bounds[2], bounds[5] - bounds[4]]))
    plotter = pv.Plotter(off_screen=True, window_size=list(window_size))
    plotter.set_background("white")
    sargs = {"title": bar_title, "color": "black", "vertical": True, "position_x": 0.88, "position_y": 0.1,
             "height": 0.8, "width": 0.05, "fmt": "%.3g" if log_scale else f"%.{_digits(clim)}g"}
    info_clip_o = info_clip_n = None
    if clip_through is not None:
        origin = np.asarray(clip_through, dtype=float)
        normal = clip_normal_for(bounds)
        clipped = grid.clip(normal=normal, origin=origin, invert=True, crinkle=False)
        plotter.add_mesh(clipped, scalars=name, cmap=cmap, clim=clim, scalar_bar_args=sargs, lighting=False,
                         log_scale=bool(log_scale))
        # face-on, parallel projection, zoomed on the neighbourhood of the cut point
        ext = np.array([bounds[1] - bounds[0], bounds[3] - bounds[2], bounds[5] - bounds[4]])
        up = np.zeros(3)
        up[int(np.argsort(ext)[0])] = 1.0
        plotter.camera_position = [tuple(origin + diag * normal), tuple(origin), tuple(up)]
        plotter.enable_parallel_projection()
        plotter.camera.parallel_scale = zoom * diag
        info_clip_o, info_clip_n = origin.tolist(), normal.tolist()
    else:
        # with a crowding region to show (often inside a weld, below the surface) the
        # surface is drawn translucent so the outlined region shows through
        plotter.add_mesh(surf, scalars=name, cmap=cmap, clim=clim, scalar_bar_args=sargs, log_scale=bool(log_scale),
                         opacity=0.6 if crowding is not None else 1.0)
        if top_view:
            plotter.view_xy()
            plotter.enable_parallel_projection()
        else:
            plotter.view_isometric()
        plotter.reset_camera()
    crowd_value, crowd_cells = None, 0
    if crowding is not None:
        crowd_value = float(crowding) * float(np.max(data))
        hot = grid.threshold(crowd_value, scalars=name)
        crowd_cells = int(hot.n_cells)
        if crowd_cells:
            edges = hot.extract_surface(algorithm="dataset_surface").extract_feature_edges(
                boundary_edges=True, feature_edges=True, manifold_edges=False, non_manifold_edges=False)
            plotter.add_mesh(hot.extract_surface(algorithm="dataset_surface"), color="magenta", opacity=1.0)
            if edges.n_cells:
                plotter.add_mesh(edges, color="magenta", line_width=2)
            plotter.add_text(f"magenta: crowding, {name} >= {crowding:.0%} of max ({crowd_value:.3g})",
                             position="lower_left", font_size=10, color="black")
    pts = _marker_points(markers)
    if len(pts):
        r = (0.004 if clip_through is not None else 0.012) * diag
        for p in pts:
            plotter.add_mesh(pv.Sphere(radius=r, center=p), color="cyan", opacity=0.9)
        plotter.add_point_labels(pts, [str(i + 1) for i in range(len(pts))], font_size=20, text_color="black",
                                 shape_color="white", shape_opacity=0.7, always_visible=True, point_size=1,
                                 show_points=False)
    if title:
        plotter.add_text(title, position="upper_left", font_size=12, color="black")
    img = plotter.screenshot(str(png), return_img=True)
    h, w = img.shape[:2]
    corners = np.array([[x, y, z] for x in bounds[0:2] for y in bounds[2:4] for z in bounds[4:6]])
    cpx = np.array(_project(plotter, corners, h))
    mpx = _project(plotter, pts, h)
    plotter.close()
    return RenderInfo(png=png, field=field, time=t, value_range=(float(np.min(data)), float(np.max(data))),
                      markers_px=mpx, bbox_px=(float(cpx[:, 0].min()), float(cpx[:, 1].min()),
                                               float(cpx[:, 0].max()), float(cpx[:, 1].max())),
                      image_size=(w, h), clip_origin=info_clip_o, clip_normal=info_clip_n,
                      clim=(float(clim[0]), float(clim[1])), log_scale=bool(log_scale),
                      crowding_threshold=crowd_value, crowding_cells=crowd_cells)


def hottest_in_regions(outdir, prefix: str, region_tags: dict[str, str]) -> tuple[str, float, list[float]] | None:
    """(region, T, point) of the hottest node of the regions whose name starts with ``prefix``.

    ``region_tags`` maps tag (as string) to region name (``hotspots.json``'s ``region_tags``).
    None if no such region is in the mesh or T/region_id are not stored.
    """
    names = readback.field_names(outdir)
    if "T" not in names or "region_id" not in names:
        return None
    mesh, T, _ = readback.read_last(outdir, "T")
    _, rid, _ = readback.read_last(outdir, "region_id")
    if len(T) != len(mesh.points):
        return None
    best = None
    for tag, nm in region_tags.items():
        if not nm.startswith(prefix):
            continue
        cells = np.flatnonzero(np.rint(rid).astype(int) == int(tag))
        if not len(cells):
            continue
        nodes = np.unique(mesh.cells[cells, :4])
        i = nodes[np.argmax(T[nodes])]
        if best is None or T[i] > best[1]:
            best = (nm, float(T[i]), [float(c) for c in mesh.points[i]])
    return best
