"""PNG preview of the current gmsh model, each volume region in its own colour."""

from __future__ import annotations

import re
from pathlib import Path

import gmsh
import numpy as np

from busbarfem.geometry.inspect import physical_names, region_facets


def region_family(name: str) -> str:
    """A region name without its trailing ``_<index>`` parts (``tab_pos_1_2`` -> ``tab_pos``)."""
    return re.sub(r"(_\d+)+$", "", name) or name


def render_preview(path: str | Path, window_size: tuple[int, int] = (1200, 900)) -> Path:
    """Render the boundary of every physical volume off-screen and save it as PNG.

    Works without a display (``pyvista.OFF_SCREEN``). Colours cycle through a
    qualitative colormap in region build order and a legend names every region; with more
    than 20 regions (a module) regions are coloured and named by family (the name without
    its trailing indices: ``cell_2_1`` -> ``cell``, ``weld_7`` -> ``weld``), with the count.
    """
    import pyvista

    from busbarfem.io.render import prefer_egl

    prefer_egl()  # headless: no failed X-server attempt and its warning
    pyvista.OFF_SCREEN = True
    node_tags, coords, _ = gmsh.model.mesh.getNodes()
    xyz = np.zeros((int(node_tags.max()) + 1, 3))
    xyz[node_tags.astype(np.int64)] = coords.reshape(-1, 3)
    plotter = pyvista.Plotter(off_screen=True, window_size=list(window_size))
    names = physical_names(3)
    keys = names if len(names) <= 20 else [region_family(n) for n in names]
    families = list(dict.fromkeys(keys))
    try:
        import matplotlib

        cmap = matplotlib.colormaps["tab20"]
        colours = [cmap(families.index(key) % 20)[:3] for key in keys]
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        colours = [(0.7, 0.5, 0.2)] * len(names)
    labelled: set[str] = set()
    for k, name in enumerate(names):
        tris = np.array(sorted(region_facets(name)), dtype=np.int64)
        if len(tris) == 0:
            continue
        used, inv = np.unique(tris, return_inverse=True)
        faces = np.hstack([np.full((len(tris), 1), 3), inv.reshape(-1, 3)]).ravel()
        surf = pyvista.PolyData(xyz[used], faces)
        key = keys[k]
        label = None
        if key not in labelled:
            labelled.add(key)
            label = key if len(names) <= 20 else f"{key} ({keys.count(key)})"
        plotter.add_mesh(surf, color=colours[k], show_edges=len(tris) < 20000, label=label)
    if labelled:
        plotter.add_legend(bcolor="white", size=(0.2, min(0.9, 0.035 * len(labelled))))
    plotter.view_isometric()
    plotter.show_axes()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    plotter.screenshot(str(path))
    plotter.close()
    return path
