"""A 3D nSmP module whose interconnects are exact lumped resistors (liionpack's topology).

Every part is a box. Superconducting node blocks (copper x 100) join the cells; each
resistor is a straight bar whose two end faces are covered by node blocks or a cell
face, so its current is uniform and its FEM resistance is exactly ``L / (sigma A)`` (a
linear potential is in the P1 space). With cell collectors of 1e8 S/m the cells' two
potentials are uniform too, so the 3D module is the lumped circuit of liionpack's
``setup_circuit(configuration="series-groups")``:

* column ``p`` (1..m_p) is a straight chain along x: node N(0,p), then per stage s the
  connection resistor Rc (the cell's negative side), the cell (s,p), and node N(s,p)
  (its positive side, touching the cell);
* at every junction s = 0..n_s a busbar resistor Rb joins N(s,p) and N(s,p+1) along y;
* terminal resistors Rt lead from N(0,1) and N(n_s,1) to the terminal faces (-y end).
"""

from __future__ import annotations

import gmsh

from busbarfem import naming

NODE_SIGMA = 5.8e9  # [S/m]: the node blocks (copper x 100)
CELL = (0.020, 0.010, 0.010)  # cell box along x, y, z [m]
NODE_X = 0.005  # node block length along x [m]
RC_X = 0.005    # connection resistor length along x [m]
COL_GAP = 0.020  # y gap between columns, the busbar resistor's length [m]
RT_Y = 0.010     # terminal resistor length along y [m]


def _sigma(R: float, length: float, area: float) -> float:
    return length / (R * area)


def write_module_mesh(path, n_s: int, m_p: int, Rb: float, Rc: float, Rt: float, size: float = 0.005):
    """Write the mesh (gmsh 4.1) and return ``(regions, materials)`` for the case file.

    ``regions`` is ``geometry.mesh_file.regions`` and ``materials`` the case's ``materials``.
    """
    cx, cy, cz = CELL
    pitch_y = cy + COL_GAP
    if not gmsh.isInitialized():
        gmsh.initialize()
    gmsh.option.setNumber("General.Terminal", 0)
    gmsh.model.add("lumped_module")
    occ = gmsh.model.occ
    boxes: dict[str, int] = {}

    def box(name, x0, y0, z0, dx, dy, dz):
        boxes[name] = occ.addBox(x0, y0, z0, dx, dy, dz)

    regions: dict[str, dict] = {}
    mats = {"node": NODE_SIGMA}
    step = NODE_X + RC_X + cx
    for p in range(1, m_p + 1):
        y0 = (p - 1) * pitch_y
        for s in range(0, n_s + 1):
            x_node = s * step
            box(f"node_{s}_{p}", x_node, y0, 0.0, NODE_X, cy, cz)
            field = naming.negative_field(1) if s == 0 else naming.positive_field(s)
            regions[f"node_{s}_{p}"] = {"material": "node", "field": field}
            if s == 0:
                continue
            x_rc = (s - 1) * step + NODE_X
            box(f"rc_{s}_{p}", x_rc, y0, 0.0, RC_X, cy, cz)
            regions[f"rc_{s}_{p}"] = {"material": "rc", "field": naming.negative_field(s)}
            box(naming.cell(s, p), x_rc + RC_X, y0, 0.0, cx, cy, cz)
            regions[naming.cell(s, p)] = {"kind": "cell", "stage": s, "parallel": p, "material": "cell"}
    mats["rc"] = _sigma(Rc, RC_X, cy * cz)
    for s in range(0, n_s + 1):
        for p in range(1, m_p):
            box(f"rb_{s}_{p}", s * step, (p - 1) * pitch_y + cy, 0.0, NODE_X, COL_GAP, cz)
            field = naming.negative_field(1) if s == 0 else naming.positive_field(s)
            regions[f"rb_{s}_{p}"] = {"material": "rb", "field": field}
    mats["rb"] = _sigma(Rb, COL_GAP, NODE_X * cz)
    box("rt_neg", 0.0, -RT_Y, 0.0, NODE_X, RT_Y, cz)
    regions["rt_neg"] = {"material": "rt", "field": naming.negative_field(1)}
    box("rt_pos", n_s * step, -RT_Y, 0.0, NODE_X, RT_Y, cz)
    regions["rt_pos"] = {"material": "rt", "field": naming.positive_field(n_s)}
    mats["rt"] = _sigma(Rt, RT_Y, NODE_X * cz)
    names = list(boxes)
    out, out_map = occ.fragment([(3, boxes[n]) for n in names], [])
    occ.synchronize()
    for n, parts in zip(names, out_map, strict=True):
        gmsh.model.setPhysicalName(3, gmsh.model.addPhysicalGroup(3, [t for _, t in parts]), n)
    # terminal faces: the -y end faces of the terminal resistors
    for n, term in (("rt_neg", naming.TERMINAL_NEG), ("rt_pos", naming.TERMINAL_POS)):
        x0 = 0.0 if n == "rt_neg" else n_s * step
        faces = gmsh.model.getEntitiesInBoundingBox(x0 - 1e-6, -RT_Y - 1e-6, -1e-6, x0 + NODE_X + 1e-6,
                                                    -RT_Y + 1e-6, cz + 1e-6, 2)
        gmsh.model.setPhysicalName(2, gmsh.model.addPhysicalGroup(2, [t for _, t in faces]), term)
    gmsh.option.setNumber("Mesh.MeshSizeMax", size)
    gmsh.option.setNumber("Mesh.MeshSizeMin", size / 2)
    gmsh.model.mesh.generate(3)
    gmsh.option.setNumber("Mesh.MshFileVersion", 4.1)
    gmsh.write(str(path))
    gmsh.model.remove()
    materials = {name: {"sigma_ref": sigma, "alpha": 0.0, "k": 400.0, "rho": 8900.0, "cp": 1.0e5}
                 for name, sigma in mats.items()}
    return regions, materials
