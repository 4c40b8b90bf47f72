"""deploy/Dockerfile, read statically: stages, user, healthcheck, what each image installs and copies."""

import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from tests.deploy.buildsim import DOCKERFILE, PORTS, REPO, SERVICES, Copy, DockerIgnore, Run, build_context, parse


def load_script(name: str) -> ModuleType:
    """Import a deploy/ script (they are run, not installed) as a module."""
    spec = importlib.util.spec_from_file_location(f"deploy_{name}", REPO / "deploy" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


extra_requirements = load_script("extra_requirements")
image_check = load_script("image_check")
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def requirement_names(lines: list[str]) -> set[str]:
    return {image_check.normalise(re.split(r"[\s\[<>=!~;]", line, maxsplit=1)[0]) for line in lines}


def test_dockerfile_is_multi_stage_on_slim_python() -> None:
    dockerfile = parse()
    assert len(dockerfile.stages) >= 2
    builder = dockerfile.stage("builder")
    for service in SERVICES:
        image = dockerfile.image(service)
        assert re.fullmatch(r"python:3\.11-slim(-\w+)?", image.base), image.base
        assert builder not in image.stages, "the runtime image must not be built on top of the builder"
        # The runtime gets the builder's virtualenv and nothing else from it.
        from_builder = [c for c in image.copies if c.from_stage == "builder"]
        assert [(c.sources, c.destination) for c in from_builder] == [(["/opt/venv"], "/opt/venv")]
        assert image.env["PATH"].startswith("/opt/venv/bin:")


@pytest.mark.parametrize("service", SERVICES)
def test_image_runs_as_non_root_with_a_readiness_healthcheck(service: str) -> None:
    image = parse().image(service)
    assert image.user is not None
    uid = image.user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "a numeric non-root uid lets Kubernetes enforce runAsNonRoot"
    assert image.healthcheck is not None
    options, command = image.healthcheck.flags()
    assert command[0] == "CMD"
    probe = " ".join(command[1:])
    assert "urllib.request" in probe and "/readyz" in probe and "curl" not in probe
    assert {"interval", "timeout", "start-period", "retries"} <= set(options)
    assert image.env["PORT"] == str(PORTS[service])
    assert image.expose == str(PORTS[service])


@pytest.mark.parametrize("service", SERVICES)
def test_builder_installs_only_the_services_extra(service: str) -> None:
    builder = parse().image(service, target="builder")
    runs = [step.command for step in builder.steps if isinstance(step, Run)]
    install = "pip install -c constraints.txt -r requirements.txt"  # the extra's packages at the pinned versions
    assert any('extra_requirements.py "${SERVICE}" > requirements.txt' in r and install in r for r in runs)
    assert any("pip install --no-deps ." in r for r in runs), "the project itself goes in without its other extras"
    assert not any(re.search(r"pip install [^&]*\.\[", r) for r in runs), "no second, wider extra install"
    assert builder.env["PIP_EXTRA_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    # The code copied in is shared/ and this service's package only.
    sources = [s for step in builder.steps if isinstance(step, Copy) for s in step.sources]
    assert f"services/{service}/" in sources
    assert not any(s in {".", "./", "services", "services/"} for s in sources)
    assert not any(s.startswith(("tests", "data")) for s in sources)
    # Of training/, only the ONNX exporter, and never where pip would install it (see below).
    assert {s for s in sources if s.startswith("training")} <= set(EXPORTER)

    lines = extra_requirements.requirements(PYPROJECT, service)
    project = PYPROJECT["project"]
    assert lines == [*project["dependencies"], *project["optional-dependencies"][service]]


#: What the text, image and fusion builders copy in to export their model to ONNX.
EXPORTER = ("training/__init__.py", "training/export_onnx.py")
ONNX_CACHE = "/opt/venv/share/onnx"


@pytest.mark.parametrize("service", SERVICES)
def test_text_image_and_fusion_images_carry_their_onnx_export(service: str) -> None:
    """A new text, image or fusion container loads the ONNX file exported at build time instead of exporting."""
    builder = parse().image(service, target="builder")
    steps = builder.steps
    exporter = next(i for i, step in enumerate(steps) if isinstance(step, Copy) and step.sources == list(EXPORTER))
    assert steps[exporter].destination.startswith("/opt/exporter/"), "outside /src: pip never installs it"
    runs = {i: step.command for i, step in enumerate(steps) if isinstance(step, Run)}
    install = next(i for i, command in runs.items() if "pip install --no-deps ." in command)
    assert install < exporter
    (export,) = [step.command for step in steps if isinstance(step, Run) and "training.export_onnx" in step.command]
    assert f"--out {ONNX_CACHE}" in export and '--only "${SERVICE}"' in export
    assert 'if [ "${SERVICE}" = text ] || [ "${SERVICE}" = image ] || [ "${SERVICE}" = fusion ]' in export
    # It imports the installed package (cwd outside /src), whose model files the service hashes.
    assert "cd /tmp && PYTHONPATH=/opt/exporter python -m training.export_onnx" in export
    runtime = parse().image(service)
    assert runtime.env.get("ONNX_CACHE_DIR") == (ONNX_CACHE if service in {"text", "image", "fusion"} else None)
    assert [(c.sources, c.destination) for c in runtime.copies if c.from_stage == "builder"] == [
        (["/opt/venv"], "/opt/venv")
    ], "the export travels inside the virtualenv"


def test_the_exporter_cli_is_what_the_dockerfile_calls() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "training.export_onnx", "--help"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert "--out" in help_text and "--only" in help_text
    assert all(not DockerIgnore.load().excluded(path) for path in EXPORTER)
    assert DockerIgnore.load().excluded("training/cli.py")


def test_text_image_has_no_tensorflow_and_speech_image_has_no_torch() -> None:
    text = requirement_names(extra_requirements.requirements(PYPROJECT, "text"))
    speech = requirement_names(extra_requirements.requirements(PYPROJECT, "speech"))
    assert "torch" in text and not {"tensorflow", "tensorflow-cpu"} & text
    assert "tensorflow-cpu" in speech and "torch" not in speech
    for light in ("gateway", "fusion"):
        names = requirement_names(extra_requirements.requirements(PYPROJECT, light))
        assert not {"torch", "tensorflow", "tensorflow-cpu"} & names, light


def test_extra_requirements_follows_self_references_and_rejects_unknown_extras(capsys) -> None:
    lines = extra_requirements.requirements(PYPROJECT, "train")
    assert {"torch", "tensorflow-cpu", "scikit-learn", "pandas"} <= requirement_names(lines)
    assert not any(line.startswith("emotion-platform") for line in lines)
    assert extra_requirements.main(["nope"]) == 2
    assert "unknown extra 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("service", SERVICES)
def test_runtime_copies_migrations_into_the_gateway_image_only(service: str) -> None:
    image = parse().image(service)
    copied = {s for c in image.copies if c.from_stage is None for s in c.sources}
    gateway_files = {"alembic.ini", "migrations/", "deploy/wait_for_migrations.py"}
    if service == "gateway":
        assert gateway_files <= copied
        assert image.env["ALEMBIC_CONFIG"] == "/app/alembic.ini"
    else:
        assert not gateway_files & copied
    assert copied - gateway_files == {"deploy/docker-entrypoint.sh"}


def test_every_copied_path_is_in_the_build_context(tmp_path: Path) -> None:
    files = build_context(tmp_path)
    dockerfile = parse()
    for service in SERVICES:
        for target in ("builder", None):
            for copy in dockerfile.image(service, target=target).copies:
                if copy.from_stage is None:
                    for source in copy.sources:
                        path = source.rstrip("/")
                        assert path in files or any(f.startswith(f"{path}/") for f in files), (service, source)


@pytest.mark.parametrize(
    ("path", "excluded"),
    [
        (".venv/bin/python", True),
        ("data/fer2013/train.csv", True),
        ("tests/deploy/test_dockerfile.py", True),
        (".git/HEAD", True),
        (".env", True),
        ("training/cli.py", True),
        (".mypy_cache/3.11/x.json", True),
        ("services/text/__pycache__/app.cpython-311.pyc", True),
        ("services/text/artifacts/checkpoints/epoch3.pt", True),
        ("pyproject.toml", False),
        ("services/text/app.py", False),
        ("services/text/artifacts/model.safetensors", False),
        ("migrations/env.py", False),
        ("deploy/image_check.py", False),
    ],
)
def test_dockerignore_keeps_the_context_small(path: str, excluded: bool) -> None:
    assert DockerIgnore.load().excluded(path) is excluded


def test_entrypoint_sizes_thread_pools_from_inference_threads() -> None:
    script = REPO / "deploy" / "docker-entrypoint.sh"
    assert subprocess.run(["sh", "-n", str(script)], check=False).returncode == 0
    env = {"PATH": os.environ["PATH"], "INFERENCE_THREADS": "3", "TF_NUM_INTEROP_THREADS": "2"}
    out = subprocess.run(["sh", str(script), "env"], env=env, capture_output=True, text=True, check=True).stdout
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert values["OMP_NUM_THREADS"] == values["MKL_NUM_THREADS"] == values["TF_NUM_INTRAOP_THREADS"] == "3"
    assert values["TF_NUM_INTEROP_THREADS"] == "2", "an explicit setting wins"
    # With no arguments it serves the configured service, and says so when SERVICE is missing.
    failed = subprocess.run(
        ["sh", str(script)], check=False, env={"PATH": os.environ["PATH"]}, capture_output=True, text=True
    )
    assert failed.returncode != 0 and "SERVICE is not set" in failed.stderr


def _entrypoint_command(tmp_path: Path, **env: str) -> list[str]:
    """The uvicorn command line the entrypoint execs (a stand-in uvicorn prints its arguments)."""
    fake = tmp_path / "uvicorn"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    fake.chmod(0o755)
    environment = {"PATH": f"{tmp_path}:{os.environ['PATH']}", "SERVICE": "text", "PORT": "8002", **env}
    script = REPO / "deploy" / "docker-entrypoint.sh"
    result = subprocess.run(["sh", str(script)], env=environment, capture_output=True, text=True, check=True)
    return result.stdout.splitlines()


def _flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_entrypoint_trusts_forwarded_headers_only_when_configured(tmp_path: Path) -> None:
    for unset in ({}, {"FORWARDED_ALLOW_IPS": ""}):
        command = _entrypoint_command(tmp_path, **unset)
        assert "--no-proxy-headers" in command and "--forwarded-allow-ips" not in command
    command = _entrypoint_command(tmp_path, FORWARDED_ALLOW_IPS="10.0.0.0/8")
    assert _flag(command, "--forwarded-allow-ips") == "10.0.0.0/8" and "--proxy-headers" in command


def test_entrypoint_serves_with_slow_client_deadlines_and_the_fast_stack(tmp_path: Path) -> None:
    command = _entrypoint_command(tmp_path, TIMEOUT_KEEP_ALIVE_S="7")
    assert _flag(command, "--http") == "shared.server:HttpToolsProtocol"
    assert _flag(command, "--loop") == "uvloop"
    assert _flag(command, "--timeout-keep-alive") == "7"
    assert _flag(command, "--factory") == "services.text.app:create_app" and _flag(command, "--port") == "8002"


def test_run_local_uses_the_same_server_options() -> None:
    spec = importlib.util.spec_from_file_location("deploy_run_local", REPO / "deploy" / "run_local.py")
    assert spec and spec.loader
    run_local = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = run_local  # its dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(run_local)
    assert "--no-proxy-headers" in run_local.server_options({})
    options = run_local.server_options({"FORWARDED_ALLOW_IPS": "10.0.0.0/8", "TIMEOUT_KEEP_ALIVE_S": "7"})
    assert _flag(options, "--forwarded-allow-ips") == "10.0.0.0/8"
    assert (
        _flag(options, "--http") == "shared.server:HttpToolsProtocol" and _flag(options, "--timeout-keep-alive") == "7"
    )


def test_entrypoint_and_healthcheck_match_the_image() -> None:
    image = parse().image("text")
    assert image.entrypoint == ["/bin/sh", "/usr/local/bin/docker-entrypoint.sh"]
    assert image.cmd == []
    assert any(c.destination == "/usr/local/bin/docker-entrypoint.sh" for c in image.copies)
    assert "--factory" in (REPO / "deploy" / "docker-entrypoint.sh").read_text()
    assert DOCKERFILE.read_text().startswith("# syntax=docker/dockerfile:1")


def test_image_check_flags_foreign_frameworks_and_gpu_builds() -> None:
    problems = image_check.dependency_problems
    assert problems("text", {"torch": "2.13.0+cpu", "transformers": "4.46.0"}) == []
    assert problems("speech", {"tensorflow-cpu": "2.21.0"}) == []
    assert any("tensorflow" in p for p in problems("text", {"torch": "2.13.0+cpu", "tensorflow": "2.21.0"}))
    assert any("torch" in p for p in problems("speech", {"tensorflow-cpu": "2.21.0", "torch": "2.13.0+cpu"}))
    assert any("CPU build" in p for p in problems("image", {"torch": "2.13.0"}))
    assert any("nvidia-cublas-cu12" in p for p in problems("image", {"torch": "2.13.0+cpu", "nvidia-cublas-cu12": "1"}))
    assert any("torch" in p for p in problems("gateway", {"torch": "2.13.0+cpu"}))


def test_image_check_reports_model_files_that_were_not_installed(tmp_path: Path) -> None:
    source = tmp_path / "src" / "artifacts"
    installed = tmp_path / "site" / "text"
    (source / "tokenizer").mkdir(parents=True)
    (source / "model.safetensors").write_bytes(b"weights")
    (source / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    (installed / "artifacts").mkdir(parents=True)
    (installed / "artifacts" / "model.safetensors").write_bytes(b"weights")
    problems = image_check.artefact_problems(source, installed)
    assert problems == ["model file artifacts/tokenizer/vocab.txt is not installed (add its suffix to package-data)"]
    assert image_check.artefact_problems(tmp_path / "missing", installed)[0].startswith("no model files")


def test_scripts_run_under_the_image_python() -> None:
    # The builder runs these with the base image's python before anything else is installed.
    for name in ("extra_requirements", "image_check"):
        result = subprocess.run(
            [sys.executable, "-I", str(REPO / "deploy" / f"{name}.py"), "--help"], check=False, capture_output=True
        )
        assert result.returncode == 0, result.stderr


def test_dependency_layer_comes_before_the_code() -> None:
    """A code change must not reinstall torch or TensorFlow: only pyproject feeds that layer."""
    steps = parse().image("text", target="builder").steps
    install = next(i for i, s in enumerate(steps) if isinstance(s, Run) and "-r requirements.txt" in s.command)
    before = {source for step in steps[:install] if isinstance(step, Copy) for source in step.sources}
    assert before == {"pyproject.toml", "deploy/extra_requirements.py", "requirements/constraints.txt"}
    code = next(i for i, s in enumerate(steps) if isinstance(s, Copy) and "shared/" in s.sources)
    assert install < code


def test_constraints_pin_every_dependency_within_pyproject_ranges() -> None:
    """requirements/constraints.txt (make lock) pins each declared package to a version pyproject.toml allows."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins: dict[str, str] = {}
    for line in (REPO / "requirements" / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not an exact pin: {line!r}"
            pins[canonicalize_name(name)] = version
    # requirements() follows the project's self-references, so every line is a third-party package.
    for line in extra_requirements.requirements(PYPROJECT, "dev"):
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not pinned: run make lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), f"{line} excludes the pin {pins[name]}"
