"""The ``paraview/`` folder of an output and a headless launcher for ParaView's pvpython.

Every output folder with fields gets ``paraview/open_result.py`` (a pvpython script, see
its docstring): it opens ``fields.xdmf`` with the Xdmf3ReaderT at the last output time and
builds a surface coloured by |J| on a log scale, a Threshold on ``region_id`` of the hottest
region and a Slice through the temperature maximum; with ``--screenshots DIR`` it saves
the three images and ``pv_result.json`` (what it measured) there.

Rendering without a display: Debian's ParaView 5.11 (``apt-get install paraview``) is built
with VTK's X11 render window only (``libvtkRenderingOpenGL2-pv5.11.so`` holds no EGL or
OSMesa window), so ``pvpython --force-offscreen-rendering`` still needs an X server. When
``DISPLAY`` is unset, :func:`run_pvpython` starts a private ``Xvfb`` (Debian package
``xvfb``, installed by ``scripts/install_paraview.sh``) for the one call and stops it after;
a ParaView built with EGL/OSMesa is run as it is. Reading data (no render) needs no display
at all.

Command line: ``python -m busbarfem.io.paraview OUTDIR [IMAGES_DIR]`` runs the script
headless and prints its JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

FOLDER = "paraview"
SCRIPT = "open_result.py"

README = """busbarfem ParaView files
========================

open_result.py  pvpython script: opens ../fields.xdmf (Xdmf3ReaderT, last output time) and shows
                |J| on a log colour scale, a Threshold of the hottest region (region_id) and a
                Slice through the temperature maximum.

  GUI:       paraview --script=open_result.py   (or View > Python Shell > Run Script)
  headless:  pvpython --force-offscreen-rendering open_result.py --screenshots DIR
             (Debian's ParaView renders through X only: without a display run
              python -m busbarfem.io.paraview OUTDIR DIR, which starts a private Xvfb)

fields.xdmf holds one grid per output time carrying every field (T, phi or phi1/phi2,
J_magnitude, J, q, SOC, transfer_current, region_id), so Threshold, Slice and Clip keep them all.
Open it with the "Xdmf3 Reader (Top Level Partition)"; the default XDMF reader fails on it.
"""


def script_text() -> str:
    """The pvpython script shipped in the package (``busbarfem/data/paraview/open_result.py``)."""
    return resources.files("busbarfem").joinpath("data", FOLDER, SCRIPT).read_text(encoding="utf-8")


def write_paraview_folder(outdir) -> Path:
    """Write ``outdir/paraview/open_result.py`` and its README; returns the script path."""
    folder = Path(outdir) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.txt").write_text(README, encoding="utf-8")
    script = folder / SCRIPT
    script.write_text(script_text(), encoding="utf-8")
    return script


def pvpython() -> str | None:
    """Path of ParaView's ``pvpython`` (None when not installed)."""
    return shutil.which("pvpython")


@contextlib.contextmanager
def private_display():
    """A display for one pvpython call: ``$DISPLAY`` if set, else a private Xvfb (or None
    when Xvfb is not installed: an EGL/OSMesa ParaView needs none).

    The Xvfb runs with ``-noreset``: by default an X server resets when its last client
    disconnects and refuses connections while it does. pvpython connects more than once (its
    render-capability probe, then the view), so on a loaded machine its second connection fell
    in that window ("bad X server connection", SIGABRT): 13 of 24 renders under a 4-process
    load, 0 of 24 with ``-noreset``.
    """
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        yield None
        return
    r, w = os.pipe()
    proc = subprocess.Popen([xvfb, "-displayfd", str(w), "-nolisten", "tcp", "-noreset", "-screen", "0", "1600x1200x24"],
                            pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    try:
        with os.fdopen(r) as f:
            number = f.readline().strip()
        if not number:
            raise RuntimeError("Xvfb did not start (no display number)")
        yield f":{number}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_pvpython(script, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``pvpython --force-offscreen-rendering script args`` headless (see the module doc);
    once more on a new display if pvpython was killed by a signal.

    Raises:
        FileNotFoundError: pvpython is not installed (``scripts/install_paraview.sh``).
    """
    exe = pvpython()
    if exe is None:
        raise FileNotFoundError("pvpython not found: install ParaView with scripts/install_paraview.sh")
    for attempt in range(2):
        with private_display() as display:
            env = dict(os.environ)
            if display:
                env["DISPLAY"] = display
            res = subprocess.run([exe, "--force-offscreen-rendering", str(script), *map(str, args)],
                                 capture_output=True, text=True, timeout=timeout, env=env)
        # killed by a signal (an X connection refused, see private_display): one more try
        # on a new display; a script error (exit > 0) is returned as it is
        if res.returncode >= 0:
            break
    return res


def failure_summary(stderr: str, tail: int = 1500) -> str:
    """What a failed pvpython printed: its error lines (VTK's ``ERR|`` and Python's
    traceback lines come before the long native stack trace), then the end of stderr."""
    errors = [ln.strip() for ln in stderr.splitlines()
              if "ERR|" in ln or "Error" in ln or ln.startswith(("Traceback", "  File"))]
    head = "\n".join(errors[:12])
    end = stderr.strip()[-tail:]
    return f"{head}\n...\n{end}" if head and head not in end else end


def last_json(stdout: str) -> dict:
    """The last JSON object line a pvpython script printed."""
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise ValueError("pvpython printed no JSON result")
    return json.loads(lines[-1])


def open_result(outdir, images=None, timeout: float = 600) -> dict:
    """Run the output's ``paraview/open_result.py`` headless; its JSON result.

    Args:
        outdir: an output folder (its ``paraview/`` folder is (re)written first).
        images: folder for the screenshots (None: no screenshots).
    """
    script = write_paraview_folder(outdir)
    args = ["--outdir", str(Path(outdir).resolve())]
    if images is not None:
        args += ["--screenshots", str(Path(images).resolve())]
    res = run_pvpython(script, *args, timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(f"pvpython failed (exit {res.returncode}): {failure_summary(res.stderr)}")
    return last_json(res.stdout)


def main(argv=None) -> int:
    """``python -m busbarfem.io.paraview OUTDIR [IMAGES_DIR]``."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or len(argv) > 2:
        print("usage: python -m busbarfem.io.paraview OUTDIR [IMAGES_DIR]", file=sys.stderr)
        return 2
    images = argv[1] if len(argv) == 2 else Path(argv[0]) / FOLDER / "images"
    try:
        print(json.dumps(open_result(argv[0], images)))
    except (FileNotFoundError, RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
