#!/usr/bin/env bash
# Print the path of a Python >= 3.12 interpreter, or explain why none was found.
# Order: $PYTHON, python3.13/python3.12 on PATH, python3 on PATH, pyenv installs.
set -u
ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; }
cands=()
[ -n "${PYTHON:-}" ] && cands+=("$PYTHON")
for n in python3.14 python3.13 python3.12 python3; do
  p=$(command -v "$n" 2>/dev/null) && cands+=("$p")
done
root=$( (pyenv root 2>/dev/null) || echo "$HOME/.pyenv")
for d in "$root"/versions/3.1[2-9]*/bin/python3 /usr/local/bin/python3.1[2-9] /usr/bin/python3.1[2-9]; do
  [ -x "$d" ] && cands+=("$d")
done
for c in "${cands[@]}"; do
  if ok "$c"; then echo "$c"; exit 0; fi
done
echo "busbarfem setup: no Python >= 3.12 found (tried: ${cands[*]:-nothing}). Install one (e.g. 'pyenv install 3.12') or set PYTHON=/path/to/python3.12." >&2
exit 1
