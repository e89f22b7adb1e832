"""Write the COMSOL busbar of ``comsol_busbar.yaml`` as a STEP file, built independently.

The STEP route of docs/verification.md (issue 16): the L profile is drawn as a closed 2D
outline in the xz plane (lines and two concentric fillet arcs, inner radius 5 mm, outer
10 mm, as in the COMSOL tutorial's work plane) and extruded 5 cm along y; the three
titanium bolts are plain cylinders. Nothing of busbarfem's builders is used, so the two
routes share only the numbers. Run ``python examples/comsol_busbar_step.py OUT.step``;
``case_text(step_name)`` gives the matching case (STEP rules, bounding-box terminals).
"""

from __future__ import annotations

import math
import sys

T, W, X_OUT, Z_TOP, R_IN = 0.005, 0.05, 0.09, 0.1, 0.005
BOLT_R, BELOW = 0.006, 0.01
BOLTS = [((X_OUT - T - BELOW, 0.0, 0.075), (T + BELOW, 0.0, 0.0)),   # bolt 1, along x
         ((0.02, -0.0125, -BELOW), (0.0, 0.0, T + BELOW)),            # bolt 2a, along z
         ((0.02, 0.0125, -BELOW), (0.0, 0.0, T + BELOW))]             # bolt 2b


def write_step(path: str) -> None:
    """Build the bar and bolts with gmsh's OCC kernel and write them to ``path``."""
    import gmsh

    own = not gmsh.isInitialized()
    if own:
        gmsh.initialize()
        gmsh.option.setNumber("General.Terminal", 0)
    gmsh.model.add("comsol_busbar_step")
    occ = gmsh.model.occ
    ri, ro = R_IN, R_IN + T
    cx, cz = X_OUT - ro, ro  # common centre of the two fillet arcs
    pts = {  # outline in the xz plane (y = -W/2), counter-clockwise seen from -y
        "a": (0.0, 0.0), "b": (cx, 0.0), "c": (X_OUT, cz), "d": (X_OUT, Z_TOP), "e": (X_OUT - T, Z_TOP),
        "f": (X_OUT - T, cz), "g": (cx, T), "h": (0.0, T), "o": (cx, cz)}
    tag = {k: occ.addPoint(x, -W / 2, z) for k, (x, z) in pts.items()}
    curves = [occ.addLine(tag["a"], tag["b"]), occ.addCircleArc(tag["b"], tag["o"], tag["c"]),
              occ.addLine(tag["c"], tag["d"]), occ.addLine(tag["d"], tag["e"]),
              occ.addLine(tag["e"], tag["f"]), occ.addCircleArc(tag["f"], tag["o"], tag["g"]),
              occ.addLine(tag["g"], tag["h"]), occ.addLine(tag["h"], tag["a"])]
    surf = occ.addPlaneSurface([occ.addCurveLoop(curves)])
    occ.extrude([(2, surf)], 0, W, 0)
    for (x, y, z), (dx, dy, dz) in BOLTS:
        occ.addCylinder(x, y, z, dx, dy, dz, BOLT_R)
    occ.synchronize()
    gmsh.write(path)
    gmsh.model.remove()
    if own:
        gmsh.finalize()


def case_text(step_name: str, size: float = 0.003) -> str:
    """The case file of the STEP route (same materials, load and cooling as the native one)."""
    e = 1e-6
    (x1, y1, z1), _ = BOLTS[0]
    boxes = []
    for (x, y, z), (dx, dy, dz) in BOLTS:
        lo = [min(x, x + dx), min(y, y + dy), min(z, z + dz)]
        hi = [max(x, x + dx), max(y, y + dy), max(z, z + dz)]
        for i in range(3):
            if (dx, dy, dz)[i] == 0:
                lo[i] -= BOLT_R + e
                hi[i] += BOLT_R + e
            else:
                lo[i] -= e
                hi[i] += e
        boxes.append(lo + hi)
    rules = "\n".join(f"      - match: {{bbox: {b}}}\n        region: bolt_{k + 1}\n        material: ti_comsol"
                      for k, b in enumerate(boxes))
    r = BOLT_R + e
    pos = [x1 - e, y1 - r, z1 - r, x1 + e, y1 + r, z1 + r]
    neg = [0.02 - r, -0.0125 - r, -BELOW - e, 0.02 + r, 0.0125 + r, -BELOW + e]
    return f"""name: comsol_busbar_step
geometry:
  step:
    file: {step_name}
    unit: m
    rules:
{rules}
      - match: {{name: "."}}
        region: busbar_1
        material: cu_comsol
    terminals:
      positive: {{bbox: {pos}}}
      negative: {{bbox: {neg}}}
materials:
  cu_comsol: {{sigma_ref: 5.998e7, alpha: 0.0, k: 400.0, rho: 8960.0, cp: 385.0}}
  ti_comsol: {{sigma_ref: 7.407e5, alpha: 0.0, k: 7.5, rho: 4940.0, cp: 710.0}}
mesh:
  size: {size}
  order: 2
load:
  electrical_input_type: voltage
  voltage: 0.02
thermal:
  initial_temperature: 293.15
  ambient_temperature: 293.15
  boundaries:
    - type: convection
      regions: [exterior]
      exclude: [terminal_pos, terminal_neg]  # the bolt end faces are insulated, as in COMSOL
      h: 5.0
solver:
  analysis: steady
"""


def analytic_volumes() -> dict[str, float]:
    """Region volumes [m^3] of the model (bolt shanks replace bar material)."""
    a = math.pi * BOLT_R**2
    ri, ro = R_IN, R_IN + T
    legs = (X_OUT - ro) * T + (Z_TOP - ro) * T  # straight parts of the profile
    bend = math.pi / 4 * (ro**2 - ri**2)
    return {"busbar_1": (legs + bend) * W - 3 * a * T, **{f"bolt_{k}": a * (T + BELOW) for k in (1, 2, 3)}}


if __name__ == "__main__":
    write_step(sys.argv[1] if len(sys.argv) > 1 else "comsol_busbar.step")
