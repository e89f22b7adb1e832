#!/usr/bin/env bash
# Install ParaView's command-line Python (pvpython) and Xvfb from Debian's packages, for the
# tests that open fields.xdmf with a real ParaView (tests/verification/test_xdmf_paraview.py,
# tests/verification/test_module_results.py) and for users who post-process with
# scripts/pv_check.py or an output's paraview/open_result.py.
#
#   sudo scripts/install_paraview.sh        (or as root)
#
# Debian 12 ships ParaView 5.11 (packages paraview + python3-paraview, ~220 packages with
# --no-install-recommends, a few minutes). Open busbarfem's fields.xdmf with the
# "Xdmf3 Reader (Top Level Partition)" (Xdmf3ReaderT): the default XDMF reader crashes on
# DOLFINx files.
# Display: reading data in pvpython (scripts/pv_check.py) needs none. Rendering does: Debian's
# ParaView is built with VTK's X11 render window only (no EGL or OSMesa), so even
# `pvpython --force-offscreen-rendering` needs an X server. This script therefore also
# installs Xvfb, and `python -m busbarfem.io.paraview OUTDIR` (busbarfem.io.paraview.run_pvpython)
# starts a private Xvfb for the call when DISPLAY is unset: no xvfb-run, no display needed.
set -euo pipefail

if command -v pvpython >/dev/null 2>&1 && command -v Xvfb >/dev/null 2>&1; then
  echo "pvpython already installed: $(command -v pvpython) (Xvfb: $(command -v Xvfb))"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: apt-get not found; install ParaView (with pvpython) from https://www.paraview.org by hand" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
$SUDO apt-get update -qq
# (read the policy into a variable first: `grep -q` closing the pipe early would make
# apt-cache die of SIGPIPE, which `pipefail` reports as "no package")
POLICY="$(apt-cache policy paraview 2>/dev/null || true)"
if ! printf '%s\n' "$POLICY" | grep -q 'Candidate: [0-9]'; then
  echo "error: no 'paraview' package in this distribution's archive" >&2
  exit 1
fi
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends paraview python3-paraview xvfb
pvpython --version || true
echo "pvpython: $(command -v pvpython)"
