"""The Dockerfile: two stages of the same Python, a final stage with the venv
only, run unprivileged; and its install steps, replayed in a clean venv, give a
working `kvip` (no Docker engine runs here)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lab.deploy_manifests import BASE, find, load
from tests.lab.dockerfile import Instruction, Stage, parse

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"
COMPILERS = ("build-essential", "gcc", "g++", "clang", "make", "python3-dev")


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse(DOCKERFILE)


def builder_of(stages: list[Stage]) -> Stage:
    final = stages[-1]
    [copy] = final.all("COPY")
    flags, _ = copy.flags()
    [builder] = [s for s in stages if s.name == flags["from"]]
    return builder


def test_two_stages_of_one_python(stages: list[Stage]) -> None:
    assert len(stages) == 2
    assert all(stage.base.startswith("python:3.11-slim") for stage in stages)
    # The venv's python is a symlink into the base image: both must be the same.
    assert stages[0].base == stages[1].base
    assert builder_of(stages) is stages[0]


def test_the_final_stage_holds_only_the_venv(stages: list[Stage]) -> None:
    final, builder = stages[-1], builder_of(stages)
    [copy] = final.all("COPY")
    _, (source, target) = copy.flags()
    assert source == target == builder.env()["VIRTUAL_ENV"]
    assert final.all("ADD") == []
    # Nothing is built or installed in the final stage, compilers least of all.
    for run in final.all("RUN"):
        assert not any(tool in run.args.split() for tool in COMPILERS), run
        assert "install" not in run.args, run
    assert final.env()["PATH"].startswith(f"{target}/bin:")


def test_the_image_runs_kvip_unprivileged(stages: list[Stage]) -> None:
    final = stages[-1]
    user = final.last("USER")
    assert user is not None
    uid, _, gid = user.args.partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0
    # The same uid as the Deployment's runAsUser, so file ownership never surprises.
    deployment = find(load(BASE / "deployment.yaml"), "Deployment")
    assert int(uid) == deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    entrypoint, cmd = final.last("ENTRYPOINT"), final.last("CMD")
    assert isinstance(entrypoint, Instruction) and entrypoint.exec_form() == ["kvip"]
    assert isinstance(cmd, Instruction) and cmd.exec_form() == ["run"]
    assert [e.args for e in final.all("EXPOSE")] == ["8080"]
    assert final.all("HEALTHCHECK") == []  # Kubernetes probes /healthz and /readyz instead


def test_the_build_context_has_what_the_builder_copies(stages: list[Stage]) -> None:
    allowed = {
        line[1:].rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    for copy in builder_of(stages).all("COPY"):
        _, (*sources, _target) = copy.flags()
        assert set(sources) <= allowed, copy


@pytest.mark.slow
def test_the_builder_steps_install_a_working_kvip(stages: list[Stage], tmp_path: Path) -> None:
    """The builder's WORKDIR, COPY and RUN steps replayed on this machine, with
    the image's paths moved under tmp_path. Only PIP_NO_CACHE_DIR is dropped, so
    that pip may use this machine's cache."""
    builder = builder_of(stages)
    venv = builder.env()["VIRTUAL_ENV"]
    workdir_instruction = builder.last("WORKDIR")
    assert workdir_instruction is not None
    workdir = workdir_instruction.args

    def here(path: str) -> Path:
        return tmp_path / path.lstrip("/")

    shim = tmp_path / "shim"
    shim.mkdir()
    # The image's `python` is a plain CPython 3.11, not this test's venv.
    (shim / "python").symlink_to(getattr(sys, "_base_executable", sys.executable))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_NO_CACHE", "VIRTUAL"))}
    env.update({k: v.replace(venv, str(here(venv))) for k, v in builder.env().items()})
    env.pop("PIP_NO_CACHE_DIR", None)
    env["PATH"] = f"{shim}:{env['PATH']}"
    env.pop("PYTHONPATH", None)
    here(workdir).mkdir(parents=True)
    for instruction in builder.instructions:
        if instruction.keyword == "COPY":
            _, (*sources, target) = instruction.flags()
            destination = here(workdir) / target
            for source in sources:
                if (REPO / source).is_dir():
                    shutil.copytree(
                        REPO / source, destination,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                    )  # fmt: skip
                else:
                    destination.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(REPO / source, destination / source)
        elif instruction.keyword == "RUN":
            result = subprocess.run(
                ["sh", "-c", instruction.args], cwd=here(workdir), env=env,
                capture_output=True, text=True, timeout=600, check=False,
            )  # fmt: skip
            assert result.returncode == 0, f"{instruction.args}\n{result.stdout}\n{result.stderr}"

    bin_dir = here(venv) / "bin"

    def run(*argv: str) -> str:
        # From an empty directory: kvip must come from the venv, not this checkout.
        result = subprocess.run(
            argv, cwd=tmp_path, env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, f"{argv}\n{result.stdout}\n{result.stderr}"
        return result.stdout

    assert "run" in run(str(bin_dir / "kvip"), "--help")
    assert "--kubeconfig" in run(str(bin_dir / "kvip"), "run", "--help")
    where = run(
        str(bin_dir / "python"), "-c",
        "import kvip, protocol; print(kvip.__file__); print(protocol.__file__)",
    )  # fmt: skip
    assert all(line.startswith(str(here(venv))) for line in where.split()), where
    # No test extras: only the runtime dependencies.
    missing = subprocess.run(
        [str(bin_dir / "python"), "-c", "import pytest"], capture_output=True, check=False
    )
    assert missing.returncode != 0
