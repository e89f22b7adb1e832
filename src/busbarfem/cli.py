"""Command line: ``busbarfem run | validate | mesh | schema``.

Works unchanged under ``mpirun -n N``: every rank computes, rank 0 prints and writes.
User mistakes exit with code 2 and one clear message (file, line, key, valid choices);
a failed solve exits with code 3 and keeps the results written so far.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
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

Fields open in ParaView with the "Xdmf3 Reader (Top Level Partition)" (Xdmf3ReaderT).
Meshes are cached in $BUSBARFEM_MESH_CACHE, else $XDG_CACHE_HOME/busbarfem/meshes
(~/.cache/busbarfem/meshes); --no-cache skips the cache."""

NO_CACHE_HELP = ("neither read nor write the mesh cache ($BUSBARFEM_MESH_CACHE, default "
                 "$XDG_CACHE_HOME/busbarfem/meshes)")


def _finite(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return v


def _positive(text: str) -> float:
    v = _finite(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return v


def _fraction(text: str) -> float:
    v = _finite(text)
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must lie between 0 and 1 (exclusive), e.g. 0.005")
    return v


def _count(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1 (leave the option out for no checkpoints)")
    return v


def _path(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("the path is empty")
    if "\x00" in text:
        raise argparse.ArgumentTypeError("the path contains a NUL character")
    return text


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="busbarfem",
        description="3D finite-element electro-thermal solver for battery-module interconnects: "
                    "current crowding, hot spots, cell current sharing and thermal runaway.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="store_true", help="print versions and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def common(sp):
        sp.add_argument("case", type=_path, help="case file (YAML)")
        sp.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="override a case value, e.g. --set load.current=200 (repeatable)")
        sp.add_argument("-q", "--quiet", action="store_true", help="no progress output")
        sp.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="logging level (default WARNING)")

    r = sub.add_parser("run", help="mesh, solve and write results", description="Mesh, solve and write results.")
    common(r)
    r.add_argument("-o", "--output", type=_path, default=None, help="output folder (default results/<case name>)")
    r.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    r.add_argument("--no-cache", action="store_true", help=NO_CACHE_HELP)
    r.add_argument("--no-report", action="store_true", help="do not write report.html/report.md")
    r.add_argument("--lumped", action="store_true",
                   help="solve the module as a lumped nSmP circuit (AcuSolve BATTERY_MODULE formulas, no mesh): "
                        "seconds, for sizing")
    r.add_argument("--profile", action="store_true",
                   help="print wall time per phase (mesh, assemble/solve, output) and write profile.json")
    r.add_argument("--checkpoint-every", type=_count, default=0, metavar="N",
                   help="write a restart checkpoint every N time steps (transient)")
    r.add_argument("--restart", type=_path, default=None, metavar="OUTDIR",
                   help="continue the run whose checkpoint is in OUTDIR (results continue there)")
    r.add_argument("--error-estimate", action="store_true",
                   help="solve once more on a finer discretisation (P1 results: P2 on the same mesh; "
                        "P2: half the element size) and report the relative change of R, P and T_max "
                        "(summary.json 'error_estimate', the report)")
    v = sub.add_parser("validate", help="check a case file without solving",
                       description="Check a case file without meshing or solving: schema, materials, "
                                   "face references, boundary regions, cell counts.")
    common(v)
    m = sub.add_parser("mesh", help="build the mesh and write it (XDMF with tags) plus a preview",
                       description="Build the mesh and write mesh.xdmf (with region tags) and a PNG preview.")
    common(m)
    m.add_argument("-o", "--output", type=_path, default=None, help="output folder (default results/<case name>_mesh)")
    m.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    m.add_argument("--no-cache", action="store_true", help=NO_CACHE_HELP)
    c = sub.add_parser("critical-current", help="find the current above which no steady state exists",
                       description="Bracket and bisect the load current on the existence of a steady "
                                   "state (thermal runaway threshold). Writes critical_current.json and "
                                   "a plot of T_max vs current.")
    common(c)
    c.add_argument("-o", "--output", type=_path, default=None, help="output folder (default results/<case name>_icrit)")
    c.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    c.add_argument("--no-cache", action="store_true", help=NO_CACHE_HELP)
    c.add_argument("--start", type=_positive, default=None, help="first current to try [A] (default: the case's load current)")
    c.add_argument("--rtol", type=_fraction, default=0.005, help="relative width of the final bracket (default 0.005)")
    rp = sub.add_parser("report", help="write report.html/report.md for an output folder",
                        description="Write report.html (self-contained) and report.md for a finished run.")
    rp.add_argument("outdir", type=_path, help="output folder of a run")
    rp.add_argument("--no-renders", action="store_true", help="skip the 3D renders")
    rp.add_argument("-q", "--quiet", action="store_true", help="no output")
    sub.add_parser("schema", help="print the JSON Schema of the case file",
                   description="Print the JSON Schema of the case file.")
    _study_parsers(sub, common)
    from busbarfem.cells.fit import add_cli as add_fit_ecm

    add_fit_ecm(sub)
    from busbarfem.io.compare import add_cli as add_compare

    add_compare(sub)
    return p


def _study_parsers(sub, common) -> None:
    """``sweep``, ``optimize`` and ``faults`` (design studies, :mod:`busbarfem.studies`)."""
    vary_help = ("a case key (dotted path as --set takes) and its values: KEY=V1,V2,... or "
                 "KEY=start:stop:n; KEY=lo:hi for --lhs (repeatable)")
    sw = sub.add_parser("sweep", help="run a case over parameter values (grid, zip, Latin hypercube)",
                        description="Run the case at every point of a parameter design, each point in its "
                                    "own folder; writes sweep.csv, sweep.json, plots and report.html. "
                                    "Under mpirun the points run on groups of --ranks-per-case ranks.")
    common(sw)
    sw.add_argument("--vary", action="append", default=[], required=True, metavar="KEY=VALUES", help=vary_help)
    how = sw.add_mutually_exclusive_group()
    how.add_argument("--grid", dest="design", action="store_const", const="grid",
                     help="every combination of the values (default)")
    how.add_argument("--zip", dest="design", action="store_const", const="zip",
                     help="the i-th value of every key together (equal lengths)")
    how.add_argument("--lhs", type=_count, default=None, metavar="N", help="N points of a Latin hypercube in the bounds")
    sw.add_argument("--seed", type=int, default=0, help="Latin hypercube seed (default 0)")
    sw.add_argument("-o", "--output", type=_path, default=None, help="sweep folder (default results/<case name>_sweep)")
    sw.add_argument("--resume", action="store_true",
                    help="continue a sweep in its folder: finished points are skipped")
    sw.add_argument("--ranks-per-case", type=_count, default=1, metavar="K", help="MPI ranks per point (default 1)")
    sw.add_argument("--point-reports", action="store_true", help="also write report.html in every point folder")
    sw.add_argument("--no-cache", action="store_true", help=NO_CACHE_HELP)
    op = sub.add_parser("optimize", help="minimise an objective subject to constraints over case parameters",
                        description="Minimise EXPR of the results (R, P, T_max, J_max, V, I, spread, mass, "
                                    "the varied keys) subject to constraints, with scipy's derivative-free "
                                    "COBYQA; every evaluation is logged like a sweep point.")
    common(op)
    op.add_argument("--vary", action="append", default=[], required=True, metavar="KEY=LO:HI",
                    help="a continuous parameter and its bounds (repeatable)")
    op.add_argument("--minimize", required=True, metavar="EXPR", help="objective, e.g. mass or T_max or R")
    op.add_argument("--subject-to", action="append", default=[], metavar="EXPR",
                    help="constraint EXPR <= EXPR, >= or ==, e.g. 'T_max <= 333.15' (repeatable)")
    op.add_argument("--max-evals", type=_count, default=40, help="limit on case runs (default 40)")
    op.add_argument("--tol", type=_fraction, default=1e-3,
                    help="final trust radius as a fraction of each range (default 1e-3)")
    op.add_argument("-o", "--output", type=_path, default=None, help="folder (default results/<case name>_optimize)")
    op.add_argument("--no-cache", action="store_true", help=NO_CACHE_HELP)
    fa = sub.add_parser("faults", help="fault signatures: each weld nugget, via or bolt degraded in turn",
                        description="Degrade each weld nugget, via and bolt in turn (conductivity x FACTOR; "
                                    "1e-6 = open) and report the terminal resistance change in micro-ohm, "
                                    "the cell current redistribution, the new hot spot and which faults a "
                                    "terminal measurement of the given resolution detects.")
    common(fa)
    fa.add_argument("--factor", type=_positive, default=1e-6,
                    help="conductivity factor of a faulty joint (default 1e-6: open)")
    fa.add_argument("--targets", default=None, metavar="LIST",
                    help="comma-separated regions or patterns (weld_*, via_3, weld_1+weld_2 together); "
                         "default: every weld_*, via_*, bolt_*")
    fa.add_argument("--resolution", type=_positive, default=1.0, metavar="MICRO_OHM",
                    help="terminal measurement resolution [micro-ohm] (default 1)")
    fa.add_argument("-o", "--output", type=_path, default=None, help="folder (default results/<case name>_faults)")
    fa.add_argument("--resume", action="store_true", help="continue in the folder: finished runs are skipped")
    fa.add_argument("--ranks-per-case", type=_count, default=1, metavar="K", help="MPI ranks per fault run (default 1)")
    fa.add_argument("--no-cache", action="store_true", help=NO_CACHE_HELP)


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


def _output_path(given: str | None, default: Path) -> Path:
    """The -o folder (an empty -o is a mistake, not the current folder)."""
    from busbarfem.errors import CaseError

    if given is None:
        return default
    if not given.strip():
        raise CaseError("-o/--output is empty; give a folder name, e.g. -o results/run1")
    return Path(given)


def _prepare_outdir(comm, path: Path, overwrite: bool, case_file=None) -> None:
    """Create (or clear for --overwrite) a busbarfem-marked output folder; see io/outdir.py."""
    from busbarfem.errors import CaseError
    from busbarfem.io.outdir import prepare

    err, kept = None, []
    if comm.rank == 0:
        try:
            kept = prepare(path, overwrite, case_file)
        except CaseError as exc:
            err = exc.message
    err, kept = comm.bcast((err, kept), root=0)
    if err:
        raise CaseError(err)
    if kept and overwrite and comm.rank == 0:
        print(f"note: kept {len(kept)} entries of {path} that busbarfem did not write: {', '.join(kept[:10])}"
              + (" ..." if len(kept) > 10 else ""), file=sys.stderr, flush=True)


def _versions(comm) -> dict:
    import dolfinx
    import gmsh
    import petsc4py

    import busbarfem

    return {"busbarfem": busbarfem.__version__, "dolfinx": dolfinx.__version__, "gmsh": gmsh.__version__,
            "petsc4py": petsc4py.__version__, "python": sys.version.split()[0], "mpi_size": comm.size}


def _load(args, extra: list[str] | None = None):
    """Load the command's case and check its names against its geometry (no meshing)."""
    from busbarfem.case.checks import check_references
    from busbarfem.case.loader import load_case

    case, src = load_case(args.case, [*args.overrides, *(extra or [])])
    check_references(case, src)
    return case, src


def cmd_run(args, comm, con: Console) -> int:
    """``busbarfem run``."""
    import yaml

    from busbarfem.api import _execute
    from busbarfem.errors import CaseError
    from busbarfem.io import checkpoint

    case, src = _load(args)
    if args.restart is not None:
        if args.lumped:
            raise CaseError("--restart continues a transient FEM run; it cannot be combined with --lumped")
        if args.output is not None and Path(args.output).resolve() != Path(args.restart).resolve():
            raise CaseError(f"--restart continues in its own folder {args.restart}; drop -o {args.output}")
        out = Path(args.restart)
        err = None
        if comm.rank == 0:
            # refuse before meshing: missing/corrupt checkpoint, a folder busbarfem did not
            # create, or changed case values (the mesh is compared after meshing)
            from busbarfem.io.outdir import MARKER, is_marked

            try:
                state = checkpoint.read_state(args.restart)
                if not is_marked(out):
                    raise CaseError(f"--restart {out}: not a folder created by busbarfem (no {MARKER} file)")
                checkpoint.verify_case(state, case, src.directory, str(out))
            except CaseError as exc:
                err = exc.message
        err = comm.bcast(err, root=0)
        if err:
            raise CaseError(err)
    else:
        out = _output_path(args.output, Path("results") / case.name)
        _prepare_outdir(comm, out, args.overwrite, args.case)
    def write_resolved() -> None:
        if comm.rank != 0:
            return
        resolved = case.model_dump(mode="json")
        resolved["_provenance"] = {"case_file": str(Path(args.case).resolve()), "overrides": args.overrides,
                                   "versions": _versions(comm),
                                   "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        if args.restart is not None:
            # the restart may change only checkpoint.RESTART_MAY_CHANGE (e.g. t_end): record
            # the values it runs with, and the runs before it
            try:
                old = yaml.safe_load((out / "case.resolved.yaml").read_text()) or {}
                prev = old.get("_provenance", {})
            except (OSError, yaml.YAMLError, AttributeError):
                prev = {}
            resolved["_provenance"]["restart_of"] = prev
        (out / "case.resolved.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))

    if args.restart is None:
        write_resolved()  # a restart writes it once the checkpoint is verified
    con.print(f"busbarfem: case '{case.name}' on {comm.size} MPI rank(s) -> {out}")
    if args.lumped:
        summary, _cols, _ = _execute(case, src, comm, out, lumped=True)
        con.print(f"  lumped circuit: stop: {summary['stop_reason']}; delivered "
                  f"{summary['energy']['charge_out_Ah']:.4g} Ah; T_max {summary['T_max']['value']:.2f} K "
                  f"at t = {summary['T_max']['time_s']:.6g} s")
        con.print(f"  results: {out}")
        return 0

    from busbarfem.io.progress import Progress

    cache = _cache_dir(args)
    total = case.solver.t_end if case.solver.analysis == "transient" else None
    with Progress(comm, total_time=total, quiet=args.quiet) as prog:
        def on_setup(sim) -> None:
            if args.restart is not None:
                # setup() verified and loaded the checkpoint before writing anything
                write_resolved()
                prog.log(f"  restarting from t = {sim.restart_state['t']:.6g} s (step {sim.restart_state['step']})")
            prog.log(f"  mesh: {sim.bundle.mesh.topology.index_map(3).size_global} cells, "
                     f"{sim.el.ndofs} electrical + {sim.th.ndofs} thermal P{sim.bundle.element_order} dofs "
                     f"({sim.timings.get('mesh', 0):.1f} s)")

        summary, cols, sim = _execute(case, src, comm, out, cache_dir=cache, progress=prog.update,
                                      restarting=args.restart is not None, checkpoint_every=args.checkpoint_every,
                                      on_setup=on_setup, setup_stage=lambda: prog.stage("meshing and set-up"))
    if args.error_estimate:
        summary = _add_error_estimate(case, src, comm, con, out, summary, sim.bundle.element_order, cache)
    term = summary.get("terminal", {})
    con.print(f"  stop: {summary['stop_reason']}")
    if term:
        r = term.get("resistance_ohm") if "module" not in summary else None
        con.print(f"  terminal: V = {term['voltage_V']:.6g} V, I = {term['current_A']:.6g} A"
                  + (f", R = {r * 1e6:.4g} micro-ohm" if r else ""))
        # maxima over the run; a transient also names when they occurred
        when = {k: f" at t = {summary[k]['time_s']:.6g} s" if len(cols.get("time [s]", ())) > 1 else ""
                for k in ("T_max", "J_max")}
        con.print(f"  T_max = {summary['T_max']['value']:.2f} K in {summary['T_max']['region']}{when['T_max']}, "
                  f"|J|_max = {summary['J_max']['value']:.4g} A/m^2 in {summary['J_max']['region']}{when['J_max']}")
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


def _add_error_estimate(case, src, comm, con: Console, out: Path, summary: dict, order: int, cache) -> dict:
    """``--error-estimate``: the extra solve, its result added to summary.json (exit 3 if it fails)."""
    from busbarfem.analysis.discretisation import error_estimate
    from busbarfem.errors import SolveError

    if summary.get("stop_reason") == "thermal runaway" or "terminal" not in summary:
        summary["error_estimate"] = {"method": None, "note": f"not estimated: the run ended with "
                                                             f"{summary.get('stop_reason')!r}"}
    else:
        con.print("  error estimate: solving once more on a finer discretisation ...")
        try:
            summary["error_estimate"] = error_estimate(case, src, comm, summary, order, cache_dir=cache)
        except SolveError as exc:
            summary["error_estimate"] = {"method": None, "failed": str(exc)}
            raise
        finally:
            if comm.rank == 0:
                (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        est = summary["error_estimate"]
        fmt = lambda v, k=1.0, u="": "n/a" if v is None else f"{v * k:+.3g}{u}"  # noqa: E731
        con.print(f"  error estimate ({est['method']}): R {fmt(est['R_rel_change'], 100, ' %')}, "
                  f"P {fmt(est['P_rel_change'], 100, ' %')}, T_max {fmt(est['Tmax_change_K'], 1, ' K')}")
    if comm.rank == 0:
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def _cache_dir(args) -> Path | None:
    """The mesh cache folder for this command (None with --no-cache)."""
    if getattr(args, "no_cache", False):
        return None
    from busbarfem.mesh import default_cache_dir

    return default_cache_dir()


def cmd_validate(args, comm, con: Console) -> int:
    """``busbarfem validate``: schema and cross-reference checks (names from the geometry
    description, see :mod:`busbarfem.case.references`), no meshing."""
    case, _ = _load(args)
    con.print(f"{args.case}: valid case '{case.name}'")
    return 0


def cmd_mesh(args, comm, con: Console) -> int:
    """``busbarfem mesh``: build the mesh, write mesh.xdmf with tags and a preview PNG."""
    from dolfinx import io

    from busbarfem.mesh import build_mesh

    case, _src = _load(args)
    out = _output_path(args.output, Path("results") / f"{case.name}_mesh")
    _prepare_outdir(comm, out, args.overwrite, args.case)
    from busbarfem.coupling import locate
    from busbarfem.errors import CaseError

    try:
        bundle = build_mesh(case, comm, cache_dir=_cache_dir(args), preview=out / "preview.png",
                            source=_src)
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
    from busbarfem.coupling import Simulation
    from busbarfem.errors import CaseError

    # the mathematical threshold, not a melting point: no temperature cap while searching
    case, src = _load(args, ["solver.runaway_temperature=1.0e12", "solver.analysis=steady"])
    out = _output_path(args.output, Path("results") / f"{case.name}_icrit")
    _prepare_outdir(comm, out, args.overwrite, args.case)
    with Simulation(case, src, comm, outdir=None, cache_dir=_cache_dir(args)) as sim:
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
        from busbarfem.io.report import critical_current_plot

        critical_current_plot(res.curve, res.current, out / "critical_current.png",
                              T_ref=case.thermal.ambient_temperature)
    con.print(f"  I_crit = {res.current:.6g} A (bracket {res.bracket[0]:.6g} .. {res.bracket[1]:.6g} A); "
              f"T_max at the last stable point {res.T_max_stable:.4g} K (the steady temperature grows "
              "without bound as I -> I_crit; any real conductor fails well before)")
    con.print(f"  results: {out}")
    return 0


def cmd_report(args, comm, con: Console) -> int:
    """``busbarfem report``: report.html/report.md from an output folder."""
    from busbarfem.errors import CaseError
    from busbarfem.io.report import write_report

    outdir = Path(args.outdir)
    if not outdir.is_dir():
        raise CaseError("not a folder (give the output folder of a run)", file=str(outdir))
    try:
        paths = write_report(outdir, comm, renders=not args.no_renders)
    except FileNotFoundError as exc:
        raise CaseError(f"not a busbarfem output folder: {exc}", file=str(args.outdir)) from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        # summary.json & co. parsed but do not have the shape a run writes (edited by hand,
        # from another version, or damaged): a corrupt artefact, not a bug of the reader
        raise CaseError(f"the run's files (summary.json, timeseries.csv, case.resolved.yaml) are not what "
                        f"busbarfem writes ({type(exc).__name__}: {exc}); rerun the case",
                        file=str(args.outdir)) from None
    for p in (paths or {}).values():
        con.print(f"written: {p}")
    return 0


def cmd_schema(args, comm, con: Console) -> int:
    """``busbarfem schema``: the case file's JSON Schema (draft 2020-12) on stdout."""
    from busbarfem.case.model import Case

    if comm.rank == 0:
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **Case.model_json_schema()}
        print(json.dumps(schema, indent=2))
    return 0


def _study_folder(args, suffix: str) -> Path:
    from busbarfem.api import load_case

    if args.output:
        return Path(args.output)
    return Path("results") / f"{load_case(args.case, args.overrides).name}_{suffix}"


def cmd_sweep(args, comm, con: Console) -> int:
    """``busbarfem sweep``: a parameter study, points on sub-communicators."""
    from busbarfem import studies

    params = [studies.parse_vary(v) for v in args.vary]
    out = _study_folder(args, "sweep")
    mode = "lhs" if args.lhs is not None else (args.design or "grid")
    con.print(f"busbarfem: sweep of {args.case} over {', '.join(p.key for p in params)} ({mode}) "
              f"on {comm.size} rank(s), {args.ranks_per_case} per point -> {out}")
    res = studies.sweep(args.case, params, out, mode=mode, n=args.lhs or 0, seed=args.seed,
                        overrides=args.overrides, comm=comm, ranks_per_case=args.ranks_per_case,
                        cache_dir=_cache_dir(args), resume=args.resume,
                        point_reports=args.point_reports, log=con.print)
    failed = sum(r["status"] != "ok" for r in res.rows)
    con.print(f"  {len(res.rows)} points, {failed} failed; table: {out / 'sweep.csv'}; report: {out / 'report.html'}")
    return 3 if failed else 0


def cmd_optimize(args, comm, con: Console) -> int:
    """``busbarfem optimize``: derivative-free constrained minimisation over case parameters."""
    from busbarfem import studies

    params = [studies.parse_vary(v) for v in args.vary]
    out = _study_folder(args, "optimize")
    con.print(f"busbarfem: minimise {args.minimize} over {', '.join(p.key for p in params)} -> {out}")
    res = studies.optimize(args.case, params, out, minimize=args.minimize, subject_to=args.subject_to,
                           overrides=args.overrides, comm=comm, max_evals=args.max_evals, tol=args.tol,
                           cache_dir=_cache_dir(args), log=con.print)
    x = res.extra
    if x["best_point"] is None:
        con.error(f"no feasible evaluation in {x['evaluations']} runs ({x['message']}); see {out / 'optimize.csv'}")
        return 3
    con.print(f"  optimum ({x['evaluations']} runs, {x['message']}): "
              + ", ".join(f"{k} = {v:.6g}" for k, v in x["best_point"].items())
              + f"; objective {x['best_objective']:.6g}")
    con.print(f"  results: {out / 'optimize.csv'}, {out / 'report.html'}")
    return 0


def cmd_faults(args, comm, con: Console) -> int:
    """``busbarfem faults``: fault signature study of the joints."""
    from busbarfem import studies

    out = _study_folder(args, "faults")
    targets = [t.strip() for t in args.targets.split(",") if t.strip()] if args.targets else None
    con.print(f"busbarfem: fault signatures of {args.case} (conductivity x {args.factor:g}) -> {out}")
    res = studies.faults(args.case, out, factor=args.factor, targets=targets, resolution=args.resolution * 1e-6,
                         overrides=args.overrides, comm=comm, ranks_per_case=args.ranks_per_case,
                         cache_dir=_cache_dir(args), resume=args.resume, log=con.print)
    for r in res.rows:
        if r.get("dR_uohm") is None:
            con.print(f"  {r['fault']:<16s} failed: {r.get('error')}")
            continue
        con.print(f"  {r['fault']:<16s} dR = {r['dR_uohm']:+.4g} micro-ohm"
                  f" ({'detectable' if r['detectable'] else 'below resolution'})"
                  + (f", {r['most_affected_cell']} share {r['most_affected_share_change'] * 100:+.3g} %"
                     if r.get("most_affected_cell") else "")
                  + f", T_max {r['T_max_K']:.2f} K in {r['T_max_region']}")
    con.print(f"  results: {out / 'faults.csv'}, {out / 'report.html'}")
    return 3 if any(r["status"] != "ok" for r in res.rows) else 0


def cmd_fit_ecm(args, comm, con: Console) -> int:
    """``busbarfem fit-ecm``: identify an ECM cell file (see busbarfem.cells.fit)."""
    from busbarfem.cells.fit import run_cli

    return run_cli(args) if comm.rank == 0 else 0


def cmd_compare(args, comm, con: Console) -> int:
    """``busbarfem compare``: output folders side by side (:mod:`busbarfem.io.compare`)."""
    from busbarfem.io.compare import run_cli

    return run_cli(args, log=con.print) if comm.rank == 0 else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse's own usage errors (exit 2) and --help (exit 0)
        return exc.code if isinstance(exc.code, int) else 2
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
                "sweep": cmd_sweep, "optimize": cmd_optimize, "faults": cmd_faults, "fit-ecm": cmd_fit_ecm,
                "compare": cmd_compare}
    try:
        return handlers[args.command](args, comm, con)
    except CaseError as exc:
        con.error(exc.format())
        return CaseError.exit_code
    except SolveError as exc:
        con.error(f"{exc} (step {exc.step}); results up to the failure are kept")
        return SolveError.exit_code
    except KeyboardInterrupt:
        con.error("interrupted (Ctrl-C); files written so far are kept")
        return 130
    except MemoryError:
        con.error("out of memory; coarsen mesh.size (or cell_size), or use a machine with more memory")
        return 2
    except Exception:
        if comm.size > 1:
            # a bug on one rank must end the whole job, not leave the others waiting forever
            import traceback

            traceback.print_exc()
            sys.stderr.flush()
            comm.Abort(1)
        raise
