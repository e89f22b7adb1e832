"""Command line: ``busbarfem run | validate | mesh | schema``.

Works unchanged under ``mpirun -n N``: every rank computes, rank 0 prints and writes.
User mistakes exit with code 2 and one clear message (file, line, key, valid choices);
a failed solve exits with code 3 and keeps the results written so far.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path

EPILOG = """examples:
  busbarfem run examples/busbar_l_bolted.yaml -o results/l_bar
  busbarfem run case.yaml --set load.current=250 --set mesh.size=0.002
  mpirun -n 4 busbarfem run case.yaml -o results/case
  busbarfem validate case.yaml
  busbarfem mesh case.yaml -o results/mesh
  busbarfem schema > case.schema.json
  busbarfem fit-ecm hppc_25C.csv hppc_40C.csv lowrate.csv -o my_cell.yaml

Fields open in ParaView with the "Xdmf3 Reader (Top Level Partition)" (Xdmf3ReaderT)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="busbarfem",
        description="3D finite-element electro-thermal solver for battery-module interconnects: "
                    "current crowding, hot spots, cell current sharing and thermal runaway.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="store_true", help="print versions and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def common(sp):
        sp.add_argument("case", help="case file (YAML)")
        sp.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="override a case value, e.g. --set load.current=200 (repeatable)")
        sp.add_argument("-q", "--quiet", action="store_true", help="no progress output")
        sp.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="logging level (default WARNING)")

    r = sub.add_parser("run", help="mesh, solve and write results", description="Mesh, solve and write results.")
    common(r)
    r.add_argument("-o", "--output", default=None, help="output folder (default results/<case name>)")
    r.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    r.add_argument("--no-cache", action="store_true", help="do not use the mesh cache")
    r.add_argument("--no-report", action="store_true", help="do not write report.html/report.md")
    r.add_argument("--lumped", action="store_true",
                   help="solve the module as a lumped circuit (seed formulas, no mesh): seconds, for sizing")
    r.add_argument("--profile", action="store_true",
                   help="print wall time per phase (mesh, assemble/solve, output) and write profile.json")
    r.add_argument("--checkpoint-every", type=int, default=0, metavar="N",
                   help="write a restart checkpoint every N time steps (transient)")
    r.add_argument("--restart", default=None, metavar="OUTDIR",
                   help="continue the run whose checkpoint is in OUTDIR (results continue there)")
    v = sub.add_parser("validate", help="check a case file without solving",
                       description="Check a case file (schema, names, materials) without solving.")
    common(v)
    m = sub.add_parser("mesh", help="build the mesh and write it (XDMF with tags) plus a preview",
                       description="Build the mesh and write mesh.xdmf (with region tags) and a PNG preview.")
    common(m)
    m.add_argument("-o", "--output", default=None, help="output folder (default results/<case name>_mesh)")
    m.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    c = sub.add_parser("critical-current", help="find the current above which no steady state exists",
                       description="Bracket and bisect the load current on the existence of a steady "
                                   "state (thermal runaway threshold). Writes critical_current.json and "
                                   "a plot of T_max vs current.")
    common(c)
    c.add_argument("-o", "--output", default=None, help="output folder (default results/<case name>_icrit)")
    c.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    c.add_argument("--start", type=float, default=None, help="first current to try [A] (default: the case's load current)")
    c.add_argument("--rtol", type=float, default=0.005, help="relative width of the final bracket (default 0.005)")
    rp = sub.add_parser("report", help="write report.html/report.md for an output folder",
                        description="Write report.html (self-contained) and report.md for a finished run.")
    rp.add_argument("outdir", help="output folder of a run")
    rp.add_argument("--no-renders", action="store_true", help="skip the 3D renders")
    rp.add_argument("-q", "--quiet", action="store_true", help="no output")
    sub.add_parser("schema", help="print the JSON Schema of the case file",
                   description="Print the JSON Schema of the case file.")
    from busbarfem.cells.fit import add_cli as add_fit_ecm

    add_fit_ecm(sub)
    return p


class Console:
    """Rank-0 printing."""

    def __init__(self, comm, quiet: bool):
        self.rank = comm.rank
        self.quiet = quiet

    def print(self, *a, **kw) -> None:
        """Print on rank 0 unless quiet."""
        if self.rank == 0 and not self.quiet:
            print(*a, **kw, flush=True)

    def error(self, text: str) -> None:
        """Print an error on rank 0 (always)."""
        if self.rank == 0:
            print(f"error: {text}", file=sys.stderr, flush=True)


def _prepare_outdir(comm, path: Path, overwrite: bool) -> None:
    from busbarfem.errors import CaseError

    err = None
    if comm.rank == 0:
        if path.exists() and any(path.iterdir()):
            if not overwrite:
                err = f"output folder {path} exists and is not empty; use --overwrite or -o another folder"
            else:
                shutil.rmtree(path)
        if err is None:
            path.mkdir(parents=True, exist_ok=True)
    err = comm.bcast(err, root=0)
    if err:
        raise CaseError(err)


def _versions(comm) -> dict:
    import dolfinx
    import gmsh
    import petsc4py

    import busbarfem

    return {"busbarfem": busbarfem.__version__, "dolfinx": dolfinx.__version__, "gmsh": gmsh.__version__,
            "petsc4py": petsc4py.__version__, "python": sys.version.split()[0], "mpi_size": comm.size}


def cmd_run(args, comm, con: Console) -> int:
    """``busbarfem run``."""
    import yaml

    from busbarfem.case.loader import load_case
    from busbarfem.coupling import Simulation

    from busbarfem.errors import CaseError
    from busbarfem.io import checkpoint

    case, src = load_case(args.case, args.overrides)
    if args.restart:
        out = Path(args.restart)
        if not checkpoint.exists(out):
            raise CaseError(f"no checkpoint in {out} (run with --checkpoint-every N first)")
    else:
        out = Path(args.output) if args.output else Path("results") / case.name
        _prepare_outdir(comm, out, args.overwrite)
    if comm.rank == 0 and not args.restart:
        resolved = case.model_dump(mode="json")
        resolved["_provenance"] = {"case_file": str(Path(args.case).resolve()), "overrides": args.overrides,
                                   "versions": _versions(comm),
                                   "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        (out / "case.resolved.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
    con.print(f"busbarfem: case '{case.name}' on {comm.size} MPI rank(s) -> {out}")
    if args.lumped:
        from busbarfem.lumped import run_lumped_case

        summary = comm.bcast(run_lumped_case(case, src, out) if comm.rank == 0 else None, root=0)
        con.print(f"  lumped circuit: stop: {summary['stop_reason']}; delivered "
                  f"{summary['energy']['charge_out_Ah']:.4g} Ah; T_max {summary['T_max']['value']:.2f} K")
        con.print(f"  results: {out}")
        return 0

    from busbarfem.io.progress import Progress

    cache = None if args.no_cache else _default_cache()
    total = case.solver.t_end if case.solver.analysis == "transient" else None
    with Progress(comm, total_time=total, quiet=args.quiet) as prog:
        sim = Simulation(case, src, comm, outdir=out, progress=prog.update, cache_dir=cache,
                         restarting=bool(args.restart))
        sim.checkpoint_every = args.checkpoint_every
        try:
            with prog.stage("meshing and set-up"):
                sim.setup()
            if args.restart:
                sim.restore(out)
                prog.log(f"  restarting from t = {sim.restart_state['t']:.6g} s (step {sim.restart_state['step']})")
            prog.log(f"  mesh: {sim.bundle.mesh.topology.index_map(3).size_global} cells, "
                     f"{sim.el.ndofs} electrical + {sim.th.ndofs} thermal dofs ({sim.timings.get('mesh', 0):.1f} s)")
            summary = sim.run()
        finally:
            sim.close()
    term = summary.get("terminal", {})
    con.print(f"  stop: {summary['stop_reason']}")
    if term:
        r = term.get("resistance_ohm") if "module" not in summary else None
        con.print(f"  terminal: V = {term['voltage_V']:.6g} V, I = {term['current_A']:.6g} A"
                  + (f", R = {r * 1e6:.4g} micro-ohm" if r else ""))
        con.print(f"  T_max = {summary['T_max']['value']:.2f} K in {summary['T_max']['region']}, "
                  f"|J|_max = {summary['J_max']['value']:.4g} A/m^2 in {summary['J_max']['region']}")
    if summary["stop_reason"] == "thermal runaway":
        con.print(f"  THERMAL RUNAWAY: {summary['runaway']['message']}")
    if not args.no_report and case.output.report:
        from busbarfem.io.report import write_report

        paths = write_report(out, comm)
        if paths:
            con.print(f"  report: {paths['html']}")
    if args.profile:
        timings = summary.get("timings_s", sim.timings)
        if comm.rank == 0:
            (out / "profile.json").write_text(json.dumps({"mpi_size": comm.size, "timings_s": timings,
                                                          "dofs": summary.get("dofs")}, indent=2))
        con.print("  profile (wall time per phase, rank 0):")
        for k, v in sorted(timings.items(), key=lambda kv: -kv[1]):
            con.print(f"    {k:<18s} {v:9.3f} s")
    con.print(f"  results: {out}")
    return 0


def _default_cache():
    from busbarfem.mesh import DEFAULT_CACHE

    return DEFAULT_CACHE


def cmd_validate(args, comm, con: Console) -> int:
    """``busbarfem validate``: schema and cross-reference checks, no meshing."""
    from busbarfem.case.loader import load_case

    case, _ = load_case(args.case, args.overrides)
    con.print(f"{args.case}: valid case '{case.name}'")
    return 0


def cmd_mesh(args, comm, con: Console) -> int:
    """``busbarfem mesh``: build the mesh, write mesh.xdmf with tags and a preview PNG."""
    from dolfinx import io

    from busbarfem.case.loader import load_case
    from busbarfem.mesh import build_mesh

    case, _src = load_case(args.case, args.overrides)
    out = Path(args.output) if args.output else Path("results") / f"{case.name}_mesh"
    _prepare_outdir(comm, out, args.overwrite)
    from busbarfem.coupling import locate
    from busbarfem.errors import CaseError

    try:
        bundle = build_mesh(case, comm, cache_dir=_default_cache(), preview=out / "preview.png")
    except CaseError as exc:
        raise locate(exc, _src) from None
    with io.XDMFFile(comm, str(out / "mesh.xdmf"), "w") as f:
        f.write_mesh(bundle.mesh)
        bundle.mesh.topology.create_connectivity(2, 3)
        bundle.cell_tags.name = "regions"
        f.write_meshtags(bundle.cell_tags, bundle.mesh.geometry)
        bundle.facet_tags.name = "surfaces"
        f.write_meshtags(bundle.facet_tags, bundle.mesh.geometry)
    if comm.rank == 0:
        (out / "regions.json").write_text(json.dumps({n: {"tag": bundle.tags[n], **bundle.regions[n].to_dict()}
                                                      for n in bundle.tags}, indent=2))
        (out / "mesh_quality.json").write_text(json.dumps({**bundle.info.parameters.get("quality", {}),
                                                           "mesher": bundle.info.parameters.get("algorithm")},
                                                          indent=2, default=str))
    con.print(f"mesh: {bundle.mesh.topology.index_map(3).size_global} cells, regions: {', '.join(sorted(bundle.tags))}")
    q = bundle.info.parameters.get("quality", {})
    if q:
        con.print("quality: " + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in q.items()))
    alg = bundle.info.parameters.get("algorithm")
    if alg:
        why = (f" (Delaunay left slivers: min dihedral {alg['delaunay_min_dihedral_deg']:.3g} deg)"
               if "delaunay_min_dihedral_deg" in alg else "")
        con.print(f"3D mesher: {alg['used']}{why}")
    con.print(f"written: {out / 'mesh.xdmf'}, {out / 'preview.png'}")
    return 0


def cmd_critical_current(args, comm, con: Console) -> int:
    """``busbarfem critical-current``: I_crit by bisection on the steady solver."""
    from busbarfem.analysis.runaway import critical_current
    from busbarfem.case.loader import load_case
    from busbarfem.coupling import Simulation
    from busbarfem.errors import CaseError

    # the mathematical threshold, not a melting point: no temperature cap while searching
    case, src = load_case(args.case, [*args.overrides, "solver.runaway_temperature=1.0e12",
                                      "solver.analysis=steady"])
    out = Path(args.output) if args.output else Path("results") / f"{case.name}_icrit"
    _prepare_outdir(comm, out, args.overwrite)
    sim = Simulation(case, src, comm, outdir=None, cache_dir=_default_cache())
    sim.setup()
    if sim.cells is not None:
        raise CaseError("critical-current works on conductor assemblies (no cells)", file=args.case)
    start = args.start or abs(case.load.current or 0.0) or 100.0
    con.print(f"busbarfem: critical current of '{case.name}' (start {start:g} A, rtol {args.rtol:g})")
    res = critical_current(sim.steady_tmax_at, start, rtol=args.rtol, log=con.print)
    if comm.rank == 0:
        data = {"case": case.name, "critical_current_A": res.current, "bracket_A": list(res.bracket),
                "T_max_at_last_stable_K": res.T_max_stable,
                "solves": [{"current_A": i, "T_max_K": t} for i, t in res.curve]}
        (out / "critical_current.json").write_text(json.dumps(data, indent=2))
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        pts = sorted((i, t) for i, t in res.curve if t is not None)
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label="steady T_max")
        ax.axvline(res.current, color="r", ls="--", label=f"I_crit = {res.current:.4g} A")
        ax.set_xlabel("current [A]")
        ax.set_ylabel("T_max [K]")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "critical_current.png", dpi=120)
        plt.close(fig)
    con.print(f"  I_crit = {res.current:.6g} A (bracket {res.bracket[0]:.6g} .. {res.bracket[1]:.6g} A); "
              f"T_max at the last stable point {res.T_max_stable:.4g} K (the steady temperature grows "
              "without bound as I -> I_crit; any real conductor fails well before)")
    con.print(f"  results: {out}")
    return 0


def cmd_report(args, comm, con: Console) -> int:
    """``busbarfem report``: report.html/report.md from an output folder."""
    from busbarfem.errors import CaseError
    from busbarfem.io.report import write_report

    try:
        paths = write_report(Path(args.outdir), comm, renders=not args.no_renders)
    except FileNotFoundError as exc:
        raise CaseError(f"not a busbarfem output folder: {exc}", file=str(args.outdir)) from None
    for p in (paths or {}).values():
        con.print(f"written: {p}")
    return 0


def cmd_schema(args, comm, con: Console) -> int:
    """``busbarfem schema``: the case file's JSON Schema on stdout."""
    from busbarfem.case.model import Case

    if comm.rank == 0:
        print(json.dumps(Case.model_json_schema(), indent=2))
    return 0


def cmd_fit_ecm(args, comm, con: Console) -> int:
    """``busbarfem fit-ecm``: identify an ECM cell file (see busbarfem.cells.fit)."""
    from busbarfem.cells.fit import run_cli

    return run_cli(args) if comm.rank == 0 else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None and not args.version:
        parser.print_help()
        return 2
    import dolfinx_solver  # noqa: F401  (before mpi4py/petsc4py)
    from mpi4py import MPI

    from busbarfem.errors import CaseError, SolveError

    comm = MPI.COMM_WORLD
    con = Console(comm, getattr(args, "quiet", False))
    if args.version:
        con.print(json.dumps(_versions(comm)))
        return 0
    logging.basicConfig(level=getattr(args, "log_level", "WARNING"),
                        format=f"[rank {comm.rank}] %(levelname)s %(name)s: %(message)s")
    handlers = {"run": cmd_run, "validate": cmd_validate, "mesh": cmd_mesh, "schema": cmd_schema,
                "critical-current": cmd_critical_current, "report": cmd_report,
                "fit-ecm": cmd_fit_ecm}
    try:
        return handlers[args.command](args, comm, con)
    except CaseError as exc:
        con.error(exc.format())
        return CaseError.exit_code
    except SolveError as exc:
        con.error(f"{exc} (step {exc.step}); results up to the failure are kept")
        return SolveError.exit_code
    except KeyboardInterrupt:
        con.error("interrupted")
        return 130
    except Exception:
        if comm.size > 1:
            # a bug on one rank must end the whole job, not leave the others waiting forever
            import traceback

            traceback.print_exc()
            sys.stderr.flush()
            comm.Abort(1)
        raise
