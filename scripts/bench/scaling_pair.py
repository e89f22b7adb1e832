"""1 vs 2 ranks on the module path, read against what the machine can give at the time.

    .venv/bin/python scripts/bench/scaling_pair.py --repeats 3 [--out F] [-- b2_module args]

Each repeat measures :func:`common.parallel_capacity` (what two concurrent processes get
from the machine now: 2.0 on two free cores), then ``b2_module.py`` on 1 rank and on 2
ranks (default ``--steps 20``, the B2 case; arguments after ``--`` go to b2_module, e.g.
``-- --steps 10 --reduced``). Reported per repeat: wall from the mesh read to the end on
each side, the speed-up ``wall_1 / wall_2``, the capacity, and the speed-up as a fraction
of the capacity (how much of what the machine offered the code used); per phase
(``Simulation.timings`` and b2's split) the 1 -> 2 ratios; and the terminal voltages of both
sides (serial and parallel must agree). Over the repeats: the medians, and the ratio of the
fastest 1-rank wall to the fastest 2-rank wall (``best_speedup``: on a shared host the
least disturbed estimate). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    """Run the pairs and write (or print) the JSON summary."""
    import json

    import run_all

    import common

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("b2_args", nargs="*", help="arguments for b2_module.py (after --)")
    a = p.parse_args()
    b2_args = a.b2_args or ["--steps", "20"]
    run_all.RAW.mkdir(parents=True, exist_ok=True)
    pairs = []
    for k in range(a.repeats):
        cap = common.parallel_capacity()
        rec = {n: run_all.run("b2_module.py", b2_args, n, f"pair{k}_np{n}", 1800, print) for n in (1, 2)}
        if any(r is None or "error" in r for r in rec.values()):
            pairs.append({"capacity": cap, "error": {n: (r or {}).get("error") for n, r in rec.items()}})
            continue
        r1, r2 = rec[1], rec[2]
        phases = {}
        for key in ("timings", "split"):
            for ph, t1 in r1[key].items():
                t2 = r2[key].get(ph)
                if t2:
                    phases[ph] = {"np1_s": round(t1, 3), "np2_s": round(t2, 3), "ratio": round(t1 / t2, 3)}
        speedup = r1["wall_s"] / r2["wall_s"]
        pairs.append({"capacity": cap, "wall_np1_s": round(r1["wall_s"], 3), "wall_np2_s": round(r2["wall_s"], 3),
                      "speedup": round(speedup, 3), "of_capacity": round(speedup / cap["capacity"], 3),
                      "phases": phases, "load_average": [r1["load_average"], r2["load_average"]],
                      "terminal_V": [r1["terminal"]["voltage_V"], r2["terminal"]["voltage_V"]],
                      "steps": r1["steps"], "ndofs_electrical": r1["ndofs_electrical"]})
        print(f"pair {k}: capacity {cap['capacity']:.2f} (python {cap['python']['capacity']:.2f}, memory "
              f"{cap['memory']['capacity']:.2f}); wall {r1['wall_s']:.2f} -> {r2['wall_s']:.2f} s = "
              f"{speedup:.2f}x, {speedup / cap['capacity']:.0%} of the capacity", flush=True)
    ok = [q for q in pairs if "speedup" in q]
    res = {"b2_args": b2_args, "machine": common.machine_info(), "pairs": pairs}
    if ok:
        res["median_speedup"] = statistics.median(q["speedup"] for q in ok)
        res["median_capacity"] = statistics.median(q["capacity"]["capacity"] for q in ok)
        res["median_of_capacity"] = statistics.median(q["of_capacity"] for q in ok)
        # on a shared host the slowest interference varies from run to run: the ratio of the
        # fastest walls on each side is the least disturbed estimate of the code's speed-up
        best1, best2 = min(q["wall_np1_s"] for q in ok), min(q["wall_np2_s"] for q in ok)
        res["best_walls_s"] = [best1, best2]
        res["best_speedup"] = round(best1 / best2, 3)
        res["max_capacity"] = max(q["capacity"]["capacity"] for q in ok)
        print(f"best of {len(ok)}: {best1:.2f} -> {best2:.2f} s = {best1 / best2:.2f}x "
              f"(median {res['median_speedup']:.2f}x; capacity median {res['median_capacity']:.2f}, "
              f"max {res['max_capacity']:.2f})", flush=True)
    text = json.dumps(res, indent=1, default=float)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
