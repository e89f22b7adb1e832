"""The mesh cache lives in a per-user folder, and a run from elsewhere leaves the checkout alone.

Default: ``$BUSBARFEM_MESH_CACHE``, else ``$XDG_CACHE_HOME/busbarfem/meshes``, else
``~/.cache/busbarfem/meshes``; ``--no-cache`` neither reads nor writes it. Headless runs
print no X-server warning (VTK is asked for its EGL window when there is no display).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import EXAMPLES, ROOT

from busbarfem.mesh import CACHE_ENV, default_cache_dir

CASE = EXAMPLES / "busbar_straight.yaml"
COARSE = ["--set", "mesh.size=0.004", "-q"]


def checkout_listing() -> dict[str, tuple[int, int]]:
    """path -> (size, mtime_ns) of every file in the checkout except git's own."""
    out = {}
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d != ".git"]
        for f in files:
            p = Path(folder, f)
            st = p.stat()
            out[str(p.relative_to(ROOT))] = (st.st_size, st.st_mtime_ns)
    return out


def cli(args, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "busbarfem", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_default_cache_folder_is_per_user(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "busbarfem" / "meshes"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")  # the XDG spec: absolute only
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "busbarfem" / "meshes"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "busbarfem" / "meshes"
    assert not default_cache_dir().is_relative_to(ROOT)


def _user_cache_with_warm_jit(tmp_path: Path) -> Path:
    """A fresh XDG cache folder that shares the real one's compiled forms and font cache
    (so the runs below do not spend their time recompiling)."""
    real = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    xdg = tmp_path / "xdg"
    xdg.mkdir()
    for name in ("fenics", "matplotlib"):
        if (real / name).is_dir():
            (xdg / name).symlink_to(real / name)
    return xdg


def test_run_from_another_folder_writes_nothing_into_the_checkout(tmp_path):
    xdg = _user_cache_with_warm_jit(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", CACHE_ENV)}
    env.update({"XDG_CACHE_HOME": str(xdg), "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"})
    work = tmp_path / "work"
    work.mkdir()
    before = checkout_listing()
    run = cli(["run", str(CASE), *COARSE], work, env)  # default output: ./results/<name>
    assert run.returncode == 0, run.stderr
    cache = xdg / "busbarfem" / "meshes"
    files = sorted(cache.iterdir())
    assert [p.suffix for p in files] == [".json", ".msh"]
    stamp = [p.stat().st_mtime_ns for p in files]
    mesh = cli(["mesh", str(CASE), "-o", "m", *COARSE], work, env)  # a cache hit
    assert mesh.returncode == 0, mesh.stderr
    env_cache = tmp_path / "env-cache"
    no_cache = cli(["mesh", str(CASE), "-o", "m2", "--no-cache", *COARSE], work,
                   {**env, CACHE_ENV: str(env_cache)})
    assert no_cache.returncode == 0, no_cache.stderr
    after = checkout_listing()
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert changed == [], f"a run from {work} changed the checkout: {changed[:20]}"
    assert (work / "results" / "busbar_straight" / "summary.json").is_file()
    assert (work / "m" / "preview.png").is_file() and (work / "m2" / "preview.png").is_file()
    assert sorted(cache.iterdir()) == files and [p.stat().st_mtime_ns for p in files] == stamp
    assert not env_cache.exists()  # --no-cache wrote no cache, not even in $BUSBARFEM_MESH_CACHE
    for proc in (run, mesh, no_cache):  # headless: no X-server warning from VTK
        assert "X server" not in proc.stderr and "DISPLAY" not in proc.stderr, proc.stderr


def test_env_var_names_the_cache_folder(tmp_path):
    env = {**os.environ, CACHE_ENV: str(tmp_path / "here"), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("DISPLAY", None)
    proc = cli(["mesh", str(CASE), "-o", str(tmp_path / "m"), *COARSE], tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.suffix for p in (tmp_path / "here").iterdir()) == [".json", ".msh"]
