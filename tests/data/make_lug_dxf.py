"""Write tests/data/lug_outline.dxf with ezdxf: the laser-cut lug of the DXF tests (issue 16).

Outline (millimetres, $INSUNITS = 4): a 60 x 20 mm strip whose right end is a half circle
(an LWPOLYLINE with a bulge), its lower-left corner replaced by a quarter ARC of radius 5 mm
(LINE + ARC entities), a round hole (CIRCLE, r = 4 mm) at the rounded end and an oblong slot
(closed LWPOLYLINE with two bulges, 12 x 5 mm). ``AREA_MM2`` is its exact area.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

W, L, RC, RH = 20.0, 60.0, 5.0, 4.0
SLOT_L, SLOT_W = 12.0, 5.0
AREA_MM2 = (L * W + math.pi * (W / 2) ** 2 / 2  # strip + half-disk end
            - (RC**2 - math.pi * RC**2 / 4)  # rounded lower-left corner
            - math.pi * RH**2  # hole
            - (SLOT_L * SLOT_W + math.pi * (SLOT_W / 2) ** 2))  # slot


def write(path: Path) -> None:
    """Draw the lug into ``path``."""
    import ezdxf

    doc = ezdxf.new("R2010")
    doc.header["$INSUNITS"] = 4  # millimetres
    msp = doc.modelspace()
    # top edge, right half circle, bottom edge as one open LWPOLYLINE: (x, y, bulge)
    msp.add_lwpolyline([(0, W, 0), (L, W, -1.0), (L, 0, 0), (RC, 0, 0)], format="xyb")
    msp.add_arc(center=(RC, RC), radius=RC, start_angle=180, end_angle=270)  # (0, 5) -> (5, 0)
    msp.add_line((0, RC), (0, W))
    msp.add_circle((L, W / 2), RH)
    x0, y0 = 15.0, W / 2 - SLOT_W / 2
    msp.add_lwpolyline([(x0, y0, 0), (x0 + SLOT_L, y0, 1.0), (x0 + SLOT_L, y0 + SLOT_W, 0),
                        (x0, y0 + SLOT_W, 1.0)], format="xyb", close=True)
    doc.saveas(path)


if __name__ == "__main__":
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("lug_outline.dxf"))
