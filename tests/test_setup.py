"""The two-command set-up: the Makefile finds a Python 3.12+ interpreter, and .ci/run runs `make test`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MAKE = shutil.which("make") or "make"
PRINT_PYTHON = "print-python: ; @echo $(PYTHON)"


def make_python(*, cwd: Path = REPO, env: dict[str, str] | None = None) -> str:
    """The interpreter the Makefile would build .venv with."""
    result = subprocess.run(
        [MAKE, "--no-print-directory", "-f", str(REPO / "Makefile"), "--eval", PRINT_PYTHON, "print-python"],
        cwd=cwd, env=env, capture_output=True, text=True, check=True, timeout=60,
    )
    return result.stdout.strip()


def bare_env(tmp_path: Path, *, pyenv_versions: tuple[str, ...] = ()) -> dict[str, str]:
    """A PATH whose only python3 is too old, and a HOME holding the given (fake) pyenv versions."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("ls", "sort"):
        (bin_dir / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    old = bin_dir / "python3"
    old.write_text("#!/bin/sh\n# Python 3.11 says no to the version check\nexit 1\n")
    old.chmod(0o755)
    home = tmp_path / "home"
    for version in pyenv_versions:
        versioned = home / ".pyenv" / "versions" / version / "bin"
        versioned.mkdir(parents=True)
        (versioned / "python3").symlink_to(sys.executable)
    home.mkdir(exist_ok=True)
    return {"PATH": str(bin_dir), "HOME": str(home), "LANG": "C"}


def outer_env() -> dict[str, str]:
    """This environment without what an enclosing `make test` passes down to sub-makes."""
    return {k: v for k, v in os.environ.items() if k not in {"PYTHON", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}


def test_it_finds_a_python_312_or_newer() -> None:
    python = make_python(env=outer_env())
    assert python, "the Makefile found no Python 3.12+"
    version = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"],
                             capture_output=True, text=True, check=True, timeout=30).stdout.split()
    assert tuple(map(int, version)) >= (3, 12)


def test_it_falls_back_to_the_newest_pyenv_interpreter_when_python3_is_old(tmp_path: Path) -> None:
    env = bare_env(tmp_path, pyenv_versions=("3.11.7", "3.12.1", "3.13.0"))
    assert make_python(cwd=tmp_path, env=env) == str(tmp_path / "home/.pyenv/versions/3.13.0/bin/python3")


def test_it_uses_an_explicit_python(tmp_path: Path) -> None:
    env = bare_env(tmp_path, pyenv_versions=("3.13.0",)) | {"PYTHON": "/opt/my/python3.12"}
    assert make_python(cwd=tmp_path, env=env) == "/opt/my/python3.12"


def test_it_explains_when_no_python_is_new_enough(tmp_path: Path) -> None:
    env = bare_env(tmp_path)
    assert make_python(cwd=tmp_path, env=env) == ""
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    result = subprocess.run([MAKE, "-f", str(REPO / "Makefile"), ".venv/.runtime"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "NTARS needs Python 3.12 or newer" in result.stdout + result.stderr
    assert not (tmp_path / ".venv").exists()


def test_it_runs_pytest_for_make_test() -> None:
    result = subprocess.run([MAKE, "-n", "test"], cwd=REPO, env=outer_env(), capture_output=True, text=True,
                            check=True, timeout=60)
    assert "-m pytest" in result.stdout


def test_it_has_an_executable_bash_ci_script_that_runs_make_test() -> None:
    script = REPO / ".ci" / "run"
    assert os.access(script, os.X_OK)
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert "export CI=true" in text
    assert "\nmake test " in text
    for check in ("make lint", "makemigrations --check", "check --deploy --fail-level WARNING", "/healthz"):
        assert check in text
    syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert syntax.returncode == 0, syntax.stderr


def example_environment(tmp_path: Path) -> dict[str, str]:
    """deploy/ntars.env.example as the services would read it, with its secret files made up under tmp_path."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    vapid = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    secrets = {
        "secret_key": "s" * 20 + "-not-a-real-key-but-long-enough-" + "k" * 20,
        "database_url": "postgres://ntars@%2Fvar%2Frun%2Fpostgresql/ntars",
        "email_url": "smtp+tls://ntars:hunter2@smtp.example.org:587",
        "vapid_private_key": vapid.decode(),
    }
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    for line in (REPO / "deploy" / "ntars.env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, value = line.split("=", 1)
            env[name] = value.strip('"')
    for name, value in secrets.items():
        path = tmp_path / name
        path.write_text(value + "\n")
        key = f"{name.upper()}_FILE"
        assert env[key] == f"/etc/ntars/credentials/{name}"
        env[key] = str(path)
    env["NTARS_DATA_DIR"] = str(tmp_path / "data")
    return env


def test_it_passes_the_deploy_check_with_the_example_production_environment(tmp_path: Path) -> None:
    env = example_environment(tmp_path)
    assert env["NTARS_ENV"] == "production"
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_it_documents_every_setting_in_the_readme() -> None:
    settings_text = (REPO / "ntars" / "settings.py").read_text()
    read = set(re.findall(r'\benv(?:bool|int|list)?\(\s*"([A-Z][A-Z0-9_]*)"', settings_text))
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", (REPO / "README.md").read_text(), re.MULTILINE))
    assert len(read) > 20
    assert read - documented == set(), "add these to README.md's configuration table"


def test_it_gives_exactly_two_quick_start_commands() -> None:
    readme = (REPO / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    assert quick_start.splitlines() == ["make demo", "make test"]
