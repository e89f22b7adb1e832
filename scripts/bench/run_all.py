"""Run the busbarfem benchmarks and write ``results/bench.json`` and ``results/bench.md``.

    .venv/bin/python scripts/bench/run_all.py            # full set, ~25 min on 2 idle cores
    .venv/bin/python scripts/bench/run_all.py --quick    # smoke set, < 3 min -> bench_quick.*

Each case runs in its own process (``mpirun -n N`` for N > 1) with OMP/BLAS threads
pinned to 1; raw records go to ``results/raw/``. Nothing timed is asserted: the script
only measures and tabulates (targets are compared in docs/performance.md). Every timed
phase is the best of ``--repeats``; the spread (max/best - 1) is reported because other
jobs share the machine.

Cases: B1 (welded L busbar, scripts/bench/cases/b1_lbar_welded.yaml) at ~0.25M, 1M, 2M
dofs on 1 and 2 ranks, and 4 ranks oversubscribed for correctness only; the LU/GAMG
crossover on the B1 operators; B2 (4s2p module, 20 transient steps) and B3 (8s6p, one
coupled step) when the module builder exists.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parents[1]
PY = REPO / ".venv" / "bin" / "python"
MPIRUN = REPO / ".venv" / "bin" / "mpirun"
RESULTS = BENCH / "results"
RAW = RESULTS / "raw"


def run(script: str, args: list[str], ranks: int, name: str, timeout: float, log) -> dict | None:
    """Run one bench worker; returns its JSON record (None on failure, with the reason logged)."""
    out = RAW / f"{name}.json"
    if out.exists():
        out.unlink()
    cmd = [str(PY), str(BENCH / script), *args, "--out", str(out)]
    if ranks > 1:
        cmd = [str(MPIRUN), "-n", str(ranks), *cmd]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONWARNINGS": "ignore"}
    t0 = time.perf_counter()
    log(f"[{time.strftime('%H:%M:%S')}] {name}: {' '.join(cmd[-8:])}")
    try:
        p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        log(f"    TIMEOUT after {timeout:.0f} s")
        return {"name": name, "error": f"timeout after {timeout:.0f} s"}
    wall = time.perf_counter() - t0
    if p.returncode != 0 or not out.exists():
        tail = (p.stderr or p.stdout).strip().splitlines()[-6:]
        log(f"    FAILED (exit {p.returncode}): " + " | ".join(tail))
        return {"name": name, "error": f"exit {p.returncode}: {' | '.join(tail)}"}
    rec = json.loads(out.read_text())
    rec["name"] = name
    rec["process_wall_s"] = wall
    log(f"    done in {wall:.0f} s")
    return rec


def module_builder_available() -> bool:
    sys.path.insert(0, str(REPO / "src"))
    try:
        from busbarfem.case.geometry import Geometry

        return "module" in Geometry.model_fields
    except Exception:  # noqa: BLE001 - any import problem means "not available"
        return False


# --------------------------------------------------------------------------- tables
def _t(rec, phase, key="best"):
    try:
        return rec["timings"][phase][key]
    except (KeyError, TypeError):
        return None


def _f(x, fmt="{:.3g}"):
    return "–" if x is None else fmt.format(x)


def derive(records: dict) -> dict:
    """Ratios the issue's targets are stated in."""
    d = {}
    for name, r in records.items():
        if not name.startswith("b1_") or not r or "error" in r:
            continue
        el, bare = _t(r, "solve_el"), _t(r, "bare_solve_const")
        bare_T = _t(r, "bare_solve_temperature")
        th1, thn = _t(r, "thermal_first"), _t(r, "thermal_next")
        d[name] = {
            "ndofs": r["ndofs_electrical"], "ranks": r["ranks"], "level": r["level"],
            "overhead_vs_bare": el / bare if el and bare else None,
            "overhead_vs_bare_median": (_t(r, "solve_el", "median") / _t(r, "bare_solve_const", "median")
                                        if bare else None),
            "overhead_vs_bare_same_sigma_form": el / bare_T if el and bare_T else None,
            "overhead_vs_bare_cpu": (_t(r, "solve_el", "cpu_best") / _t(r, "bare_solve_const", "cpu_best")
                                     if bare else None),
            "thermal_reuse_ratio": th1 / thn if th1 and thn else None,
            "electrical_iterations": max(r["iterations"]["electrical"]),
            "dofs_per_s_electrical": r["ndofs_electrical"] / el if el else None,
        }
    for lev in ("30k", "60k", "0.25M", "1M", "2M"):
        rb, rr = records.get(f"mem_b1_{lev}"), records.get(f"mem_bare_{lev}")
        if rb and rr and "error" not in rb and "error" not in rr:
            mb, mr = rb["memory"], rr["memory"]
            d[f"memory_{lev}"] = {
                "ndofs": mb["ndofs"], "busbarfem_peak_MiB": mb["peak_MiB"], "bare_peak_MiB": mr["peak_MiB"],
                "busbarfem_KiB_per_dof": mb["peak_KiB_per_dof"], "bare_KiB_per_dof": mr["peak_KiB_per_dof"],
                "ratio": mb["peak_KiB_per_dof"] / mr["peak_KiB_per_dof"],
                "busbarfem_above_mesh_KiB_per_dof": mb["above_mesh_KiB_per_dof"],
                "bare_above_mesh_KiB_per_dof": mr["above_mesh_KiB_per_dof"],
                "busbarfem_phases": mb["phases"], "bare_phases": mr["phases"]}
    for lev in ("30k", "0.25M", "1M", "2M"):
        if f"b1_{lev}_np1" not in records:
            continue
        r1, r2 = records.get(f"b1_{lev}_np1"), records.get(f"b1_{lev}_np2")
        if r1 and r2 and "error" not in r1 and "error" not in r2:
            d[f"speedup_1to2_{lev}"] = {ph: (_t(r1, ph) / _t(r2, ph)) if _t(r2, ph) else None
                                        for ph in ("assemble_el", "solve_el", "thermal_first", "thermal_next")}
        r4 = records.get(f"b1_{lev}_np4")
        if r1 and r4 and "error" not in r1 and "error" not in r4:
            d[f"parallel_check_{lev}"] = {
                "R_rel_diff_np2": abs(r2["resistance_ohm"] / r1["resistance_ohm"] - 1) if r2 and "error" not in r2 else None,
                "R_rel_diff_np4": abs(r4["resistance_ohm"] / r1["resistance_ohm"] - 1),
                "Tmax_diff_np2_K": abs(r2["T_max_K"] - r1["T_max_K"]) if r2 and "error" not in r2 else None,
                "Tmax_diff_np4_K": abs(r4["T_max_K"] - r1["T_max_K"]),
            }
    return d


def markdown(meta: dict, records: dict, derived: dict) -> str:
    m = meta["machine"]
    L = [f"# busbarfem benchmarks ({'quick' if meta['quick'] else 'full'} run)", "",
         f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory']}; Python {m['python']}, DOLFINx "
         f"{m['dolfinx']}, PETSc {m['petsc']}; git {m['git']}; container: {m['in_container']}.  ",
         f"Load average at start {tuple(round(x, 1) for x in meta['load_start'])}, at end "
         f"{tuple(round(x, 1) for x in meta['load_end'])} (other jobs share the machine). Total "
         f"{meta['total_s'] / 60:.1f} min. Times are the best of {meta['repeats']} [s] (spread = max/best - 1).", "",
         "## B1: welded L busbar (passive conductor, CG+GAMG, rtol 1e-8)", "",
         "| level | ranks | dofs | cells | mesh: gmsh or cache + refine [s] | setup [s] | assemble E [s] | "
         "solve E [s] (spread) | bare solve [s] | ratio wall | ratio of medians | ratio CPU | ratio same sigma(T) form | E its | thermal 1st [s] | "
         "thermal next [s] (spread) | reuse 1st/next | T its 1st/next | peak RSS/rank [MiB] | E dofs/s |",
         "|" + "---|" * 20]
    for name, r in records.items():
        if not name.startswith("b1_"):
            continue
        if not r or "error" in r:
            L.append(f"| {name} | | | | | | | failed: {r.get('error', '') if r else ''} |" + " |" * 12)
            continue
        dd = derived.get(name, {})
        mesh = r["mesh"]
        bare = _t(r, "bare_solve_const")
        L.append("| " + " | ".join([
            r["level"], str(r["ranks"]), f"{r['ndofs_electrical']:,}", f"{r['cells']:,}",
            f"{mesh['mesh_build_or_load']:.1f} + {mesh['mesh_refine']:.1f}",
            _f(_t(r, "setup")), _f(_t(r, "assemble_el")),
            f"{_f(_t(r, 'solve_el'))} ({_f(_t(r, 'solve_el', 'spread'), '{:.0%}')})", _f(bare),
            _f(dd.get("overhead_vs_bare"), "{:.2f}"), _f(dd.get("overhead_vs_bare_median"), "{:.2f}"),
            _f(dd.get("overhead_vs_bare_cpu"), "{:.2f}"),
            _f(dd.get("overhead_vs_bare_same_sigma_form"), "{:.2f}"),
            str(max(r["iterations"]["electrical"])), _f(_t(r, "thermal_first")),
            f"{_f(_t(r, 'thermal_next'))} ({_f(_t(r, 'thermal_next', 'spread'), '{:.0%}')})",
            _f(dd.get("thermal_reuse_ratio"), "{:.1f}"),
            f"{max(r['iterations']['thermal_first'])}/{max(r['iterations']['thermal_next'] or [0])}",
            "/".join(f"{x:.0f}" for x in r["maxrss_MiB"]), _f(dd.get("dofs_per_s_electrical"), "{:,.0f}"),
        ]) + " |")
    sp = {k: v for k, v in derived.items() if k.startswith("speedup")}
    if sp:
        L += ["", "### 1 -> 2 ranks (B1)", "", "| level | assemble E | solve E | thermal 1st | thermal next |",
              "|---|---|---|---|---|"]
        for k, v in sp.items():
            L.append(f"| {k.split('_')[-1]} | " + " | ".join(_f(v[p], "{:.2f}x") for p in
                                                           ("assemble_el", "solve_el", "thermal_first", "thermal_next")) + " |")
    pc = {k: v for k, v in derived.items() if k.startswith("parallel_check")}
    if pc:
        L += ["", "### Serial vs parallel (correctness; 4 ranks are oversubscribed on 2 cores)", "",
              "| level | rel. diff. R, 2 ranks | rel. diff. R, 4 ranks | dT_max 2 ranks [K] | dT_max 4 ranks [K] |",
              "|---|---|---|---|---|"]
        for k, v in pc.items():
            L.append(f"| {k.split('_')[-1]} | {_f(v['R_rel_diff_np2'], '{:.1e}')} | {_f(v['R_rel_diff_np4'], '{:.1e}')} | "
                     f"{_f(v['Tmax_diff_np2_K'], '{:.1e}')} | {_f(v['Tmax_diff_np4_K'], '{:.1e}')} |")
    mem = {k: v for k, v in derived.items() if k.startswith("memory_")}
    if mem:
        L += ["", "### Peak memory per dof (B1, 1 rank): busbarfem vs the bare DOLFINx solve", "",
              "Each in its own process (busbarfem: set-up, electrical solve, two thermal steps, no "
              "bare baseline in the process; bare: `bare_dolfinx.py`), same mesh level; peak = VmHWM, "
              "per electrical dof. Above the mesh = peak minus the RSS after meshing.", "",
              "| level | dofs | busbarfem peak [MiB] | bare peak [MiB] | busbarfem [KiB/dof] | bare [KiB/dof] | "
              "ratio | above the mesh: busbarfem / bare [KiB/dof] |", "|---|---|---|---|---|---|---|---|"]
        for k, v in mem.items():
            L.append(f"| {k.split('_', 1)[1]} | {v['ndofs']:,} | {v['busbarfem_peak_MiB']:.0f} | {v['bare_peak_MiB']:.0f} | "
                     f"{v['busbarfem_KiB_per_dof']:.2f} | {v['bare_KiB_per_dof']:.2f} | {v['ratio']:.2f} | "
                     f"{v['busbarfem_above_mesh_KiB_per_dof']:.2f} / {v['bare_above_mesh_KiB_per_dof']:.2f} |")
    cx = {k: v for k, v in records.items() if k.startswith("crossover_")}
    if cx:
        L += ["", "## LU (MUMPS) vs CG+GAMG on the B1 operators (1 rank)", "",
              "First solve = PC set-up (GAMG hierarchy / LU factorisation) + solve; re-assembled = new matrix "
              "values, same pattern (every electrical step: GAMG reuses its interpolation, MUMPS refactorises); "
              "same operator = a further solve with the PC kept (thermal steps at fixed dt).", "",
              "| problem | dofs | GAMG first [s] | GAMG its | GAMG re-assembled [s] | GAMG same operator [s] | "
              "LU first [s] | LU re-assembled [s] | LU same operator [s] | LU peak RSS [MiB] |",
              "|---|---|---|---|---|---|---|---|---|---|"]
        for name, r in cx.items():
            if not r or "error" in r:
                L.append(f"| {name} | failed: {r.get('error', '') if r else ''} |" + " |" * 8)
                continue
            for prob, pr in r["problems"].items():
                c = {x["name"]: x for x in pr["candidates"]}
                g, lu = c.get("preset_gamg", {}), c.get("mumps_lu", {})
                L.append(f"| {prob} | {pr['ndofs']:,} | {_f(g.get('total_s'))} | {g.get('its', '–')} | "
                         f"{_f(g.get('resetup_solve_s'))} | {_f(g.get('resolve_s'))} | {_f(lu.get('total_s'))} | "
                         f"{_f(lu.get('resetup_solve_s'))} | {_f(lu.get('resolve_s'))} | {_f(r.get('maxrss_MiB', [None])[0], '{:.0f}')} |")
    L += ["", "## Modules (MSMD cells, two potentials, block size 2)", "",
          "| case | ranks | steps | dofs E + T | cells | mesh [s] | setup [s] | electrical [s/step] | E solve calls/step | "
          "thermal [s/step] | cell update [s/step] | record [s/step] | output [s total] | per step [s] | E its | "
          "peak RSS/rank [MiB] | stop |",
          "|" + "---|" * 17]
    for name in ("b2_4s2p", "b2_4s2p_np2", "b3_8s6p", "b2_4s2p_full_np2"):
        r = records.get(name)
        if r is None:
            continue
        if "skipped" in r or "error" in r:
            L.append(f"| {name} | {r.get('skipped') or 'failed: ' + r.get('error', '')} |" + " |" * 15)
            continue
        n = max(r["steps"], 1)
        tm, sp_ = r["timings"], r["split"]
        el_only = tm.get("solve_electrical", 0) - sp_.get("cell_update", 0)
        L.append("| " + " | ".join([
            r["case"] + (" full 1C discharge" if r.get("full_discharge") else ""), str(r["ranks"]), str(r["steps"]),
            f"{r['ndofs_electrical']:,} + {r['ndofs_thermal']:,}", f"{r['cells']:,}", _f(tm.get("mesh")),
            _f(tm.get("setup")), _f(el_only / n), f"{r['electrical_solves'] / n:.1f}",
            _f(tm.get("solve_thermal", 0) / n), _f(sp_.get("cell_update", 0) / n), _f(sp_.get("record", 0) / n),
            _f(tm.get("output")), _f(r["per_step_s"]), str(max(r["iterations"]["electrical"] or [0])),
            "/".join(f"{x:.0f}" for x in r["maxrss_MiB"]), str(r.get("stop_reason")),
        ]) + " |")
    L += ["", "Raw records: `results/bench.json` (every repeat's best/median/max and CPU time)."]
    return "\n".join(L) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="30k-dof B1, 2-step B2, no B3 (< 3 min)")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--only", default=None, help="comma-separated job names to run (others kept from bench.json)")
    p.add_argument("--tables-only", action="store_true", help="rewrite the .md table from the .json, run nothing")
    p.add_argument("--full-discharge", action="store_true",
                   help="also run the whole 1C discharge of the 4s2p example on 2 ranks (adds minutes)")
    a = p.parse_args()
    RAW.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []

    def log(s: str) -> None:
        print(s, flush=True)
        lines.append(s)

    sys.path.insert(0, str(BENCH))
    import common

    t_start = time.perf_counter()
    load_start = os.getloadavg()
    rep = a.repeats or (2 if a.quick else 3)
    R = str(rep)
    jobs: list[tuple[str, str, list[str], int, float]] = []
    if a.quick:
        for np_ in (1, 2):
            jobs.append((f"b1_30k_np{np_}", "b1_busbar.py", ["--level", "30k", "--repeats", R], np_, 300))
        jobs.append(("b1_30k_np4", "b1_busbar.py", ["--level", "30k", "--repeats", "1", "--no-bare"], 4, 300))
        jobs.append(("crossover_30k", "solver_sweep.py", ["--level", "30k", "--set", "crossover", "--repeats", "1"],
                     1, 300))
    else:
        for lev in ("0.25M", "1M", "2M"):
            # the bare sigma(T)-form variant only where it is cheap; the first solve of each
            # sets the preconditioner up from scratch, so 0.25M gets 5 repeats (4 reuse solves)
            bare = "const,temperature" if lev == "0.25M" else "const"
            r_ = str(max(rep, 5)) if lev == "0.25M" else R
            jobs.append((f"b1_{lev}_np1", "b1_busbar.py", ["--level", lev, "--repeats", r_, "--bare-variants", bare],
                         1, 1800))
        # the default (flatter) sheet elements refined twice: iterations vs element shape
        jobs.append(("b1_1M_coarse_np1", "b1_busbar.py", ["--level", "1M_coarse", "--repeats", "2", "--no-bare"],
                     1, 1500))
        for lev in ("0.25M", "1M"):
            r_ = str(max(rep, 5)) if lev == "0.25M" else R
            jobs.append((f"b1_{lev}_np2", "b1_busbar.py", ["--level", lev, "--repeats", r_,
                                                           "--bare-variants", "const"], 2, 900))
        # 4 ranks oversubscribed on 2 cores: correctness only
        jobs.append(("b1_0.25M_np4", "b1_busbar.py", ["--level", "0.25M", "--repeats", "1", "--no-bare"], 4, 900))
        for lev in ("10k", "30k", "0.25M", "1M"):
            jobs.append((f"crossover_{lev}", "solver_sweep.py", ["--level", lev, "--set", "crossover",
                                                                 "--repeats", "1"], 1, 900))
    # peak memory per dof, busbarfem vs bare, each alone in its process (1 rank)
    for lev in (("30k",) if a.quick else ("60k", "0.25M", "1M")):
        jobs.append((f"mem_b1_{lev}", "b1_busbar.py", ["--level", lev, "--repeats", "1", "--thermal-steps", "1",
                                                       "--no-bare"], 1, 1800))
        jobs.append((f"mem_bare_{lev}", "bare_dolfinx.py", ["--level", lev, "--repeats", "1"], 1, 1800))
    modules = module_builder_available()
    if modules:
        steps = "2" if a.quick else "20"
        jobs.append(("b2_4s2p", "b2_module.py", ["--steps", steps], 1, 900))
        if not a.quick:
            jobs.append(("b2_4s2p_np2", "b2_module.py", ["--steps", steps], 2, 900))
            jobs.append(("b3_8s6p", "b2_module.py", ["--series", "8", "--parallel", "6", "--steps", "1"], 2, 1200))
        if a.full_discharge:
            jobs.append(("b2_4s2p_full_np2", "b2_module.py", ["--full"], 2, 3600))
    stem = "bench_quick" if a.quick else "bench"
    if a.tables_only:
        data = json.loads((RESULTS / f"{stem}.json").read_text())
        data["derived"] = derive(data["records"])
        (RESULTS / f"{stem}.json").write_text(json.dumps(data, indent=1, default=float))
        (RESULTS / f"{stem}.md").write_text(markdown(data["meta"], data["records"], data["derived"]))
        return
    old = {}
    if a.only and (RESULTS / f"{stem}.json").exists():
        old = json.loads((RESULTS / f"{stem}.json").read_text()).get("records", {})
    records: dict = dict(old)
    for name, script, args, ranks, timeout in jobs:
        if a.only and name not in a.only.split(","):
            continue
        records[name] = run(script, args, ranks, name, timeout, log)
    if not modules:
        for name in ("b2_4s2p", "b3_8s6p"):
            records[name] = {"skipped": "no module builder (busbarfem.case.geometry.Geometry has no 'module' field)"}
    elif a.quick:
        records["b3_8s6p"] = {"skipped": "not run in --quick"}
    meta = {"quick": a.quick, "repeats": rep, "machine": common.machine_info(), "load_start": load_start,
            "load_end": os.getloadavg(), "total_s": time.perf_counter() - t_start, "log": lines}
    derived = derive(records)
    (RESULTS / f"{stem}.json").write_text(json.dumps({"meta": meta, "derived": derived, "records": records},
                                                     indent=1, default=float))
    (RESULTS / f"{stem}.md").write_text(markdown(meta, records, derived))
    log(f"wrote {RESULTS / stem}.json and {stem}.md in {meta['total_s'] / 60:.1f} min")


if __name__ == "__main__":
    main()
