"""Build and run a service "image" on the host by replaying deploy/Dockerfile step by step.

The builder stage's COPY steps are applied to a folder standing in for the image's root
filesystem and its RUN steps are executed with /bin/sh, absolute paths (/src, /opt) mapped
into that folder, with Docker's layer-cache rule (a step is skipped while it and everything
before it is unchanged). The runtime stage is then started with the image's ENTRYPOINT, ENV,
WORKDIR and HEALTHCHECK. This proves the image's dependency set and files are complete
without a container engine. One difference: the CPU wheel index is swapped for this
machine's package mirror, which holds the same ``torch==2.13.0+cpu`` wheel.
"""

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import free_port
from tests.deploy.buildsim import REPO, Copy, Image, Run, apply_copy, parse

CACHE = Path(os.environ.get("EMOTION_DEPLOY_CACHE", Path.home() / ".cache" / "emotion-deploy-images"))
#: Host variables the replayed steps may see (pip's mirror settings, certificates).
PASSTHROUGH = re.compile(r"^(PIP_(?!EXTRA_INDEX_URL)\w+|SSL_CERT_\w+|REQUESTS_CA_BUNDLE|LANG|LC_ALL|TZ)$")
SYSTEM_PATH = "/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
#: What the dependency layer is built from (it must not see the code).
DEPENDENCY_INPUTS = {"pyproject.toml", "deploy/extra_requirements.py", "requirements/constraints.txt"}


def base_python() -> Path:
    """The interpreter standing in for the base image's ``python`` (3.11, no packages)."""
    return Path(getattr(sys, "_base_executable", sys.executable)).resolve()


@dataclass
class Rootfs:
    """A folder standing in for an image filesystem; absolute paths under ``mapped`` live in it."""

    root: Path
    mapped: tuple[str, ...]
    others: dict[str, Path] = field(default_factory=dict)

    def path(self, absolute: str) -> Path:
        for prefix, target in self.others.items():
            if absolute == prefix or absolute.startswith(prefix.rstrip("/") + "/"):
                return target / absolute[len(prefix) :].lstrip("/")
        return self.root / absolute.lstrip("/")

    def rewrite(self, text: str) -> str:
        """Map the image's absolute paths in a command or variable onto the host."""
        prefixes = sorted([*self.mapped, *self.others], key=len, reverse=True)
        alternatives = "|".join(re.escape(p.rstrip("/")) for p in prefixes)
        pattern = re.compile(rf"(?<![\w.:/~-])({alternatives})(?=/|\s|$|:|\"|')")
        return pattern.sub(lambda m: str(self.path(m[1])), text)


@dataclass
class Build:
    service: str
    rootfs: Rootfs
    log: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def venv(self) -> Path:
        return self.rootfs.path("/opt/venv")


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _tree_digest(paths: list[Path]) -> bytes:
    digest = hashlib.sha256()
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            digest.update(str(file.relative_to(path.parent)).encode())
            digest.update(file.read_bytes())
    return digest.digest()


def step_env(rootfs: Rootfs, variables: dict[str, str], bin_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if PASSTHROUGH.match(k)}
    for key, value in variables.items():
        if key == "PIP_EXTRA_INDEX_URL":
            continue  # the host's pip configuration provides the mirror
        env[key] = rootfs.rewrite(value)
    env["PATH"] = f"{rootfs.path('/opt/venv/bin')}:{bin_dir}:{SYSTEM_PATH}"
    return env


def build(service: str, context: Path, requirements: str) -> Build:
    """Replay the builder stage for ``service`` into a cached folder (reused across runs)."""
    key = _digest(requirements.encode(), str(base_python()).encode(), sys.version.encode())
    root = CACHE / f"{service}-{key}"
    for stale in CACHE.glob(f"{service}-*"):
        if stale != root:
            shutil.rmtree(stale, ignore_errors=True)
    # A build killed half-way (a pip install cut short) leaves a venv whose packages look installed
    # but are not: never reuse it.
    unfinished = CACHE / f".{service}-{key}.building"
    if unfinished.exists():
        shutil.rmtree(root, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    unfinished.touch()
    rootfs = Rootfs(root, mapped=("/src", "/opt"))
    result = Build(service, rootfs)
    bin_dir = root / ".base-bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in ("python", "python3"):
        link = bin_dir / name
        if not link.exists():
            link.symlink_to(base_python())
    shutil.rmtree(rootfs.path("/src"), ignore_errors=True)  # code is copied afresh every time

    image: Image = parse().image(service, target="builder")
    layers = root / ".layers"
    layers.mkdir(exist_ok=True)
    chain = _digest(image.base.encode())
    # Layers are reused only up to the first copy of code: this folder is mutable, unlike
    # Docker's layers, so what follows a code copy is always redone.
    cacheable = True
    for step in image.steps:
        if isinstance(step, Copy):
            sources = [context / s.rstrip("/") for s in step.sources]
            chain = _digest(chain.encode(), step.destination.encode(), _tree_digest(sources))
            apply_copy(step, context, rootfs.root)
            cacheable = cacheable and set(step.sources) <= DEPENDENCY_INPUTS
            continue
        assert isinstance(step, Run)
        chain = _digest(chain.encode(), step.command.encode())
        cached = cacheable
        if cached and (layers / chain).exists():
            result.log.append(f"CACHED RUN {step.command[:70]}")
            continue
        started = time.monotonic()
        completed = subprocess.run(
            ["/bin/sh", "-c", rootfs.rewrite(step.command)],
            cwd=rootfs.path(step.workdir),
            env=step_env(rootfs, step.env, bin_dir),
            capture_output=True,
            text=True,
            check=False,
        )
        result.log.append(f"RUN {step.command[:70]} ({time.monotonic() - started:.0f}s, rc={completed.returncode})")
        if completed.returncode != 0:
            result.error = f"RUN {step.command}\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"
            return result
        result.log.append(completed.stdout.strip().splitlines()[-1] if completed.stdout.strip() else "")
        if cached:
            (layers / chain).touch()
    unfinished.unlink()
    return result


@dataclass
class Container:
    """A running replay of the runtime image of one service."""

    service: str
    build: Build
    rootfs: Rootfs
    image: Image
    env: dict[str, str]
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def command(self, args: list[str]) -> list[str]:
        return [self.rootfs.rewrite(word) for word in [*self.image.entrypoint, *args]]

    def run(self, args: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``docker run <image> ARGS`` (the entrypoint runs them)."""
        return subprocess.run(
            self.command(args),
            cwd=self.rootfs.path(self.image.workdir),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(self.image.cmd),
                cwd=self.rootfs.path(self.image.workdir),
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def healthcheck(self) -> bool:
        """The image's HEALTHCHECK command, run as Docker would inside the container."""
        assert self.image.healthcheck is not None
        options, words = self.image.healthcheck.flags()
        assert words[0] == "CMD"
        timeout = float(options.get("timeout", "30s").rstrip("s"))
        try:
            completed = subprocess.run(
                [self.rootfs.rewrite(w) for w in words[1:]],
                env=self.env,
                cwd=self.rootfs.path(self.image.workdir),
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return False
        return completed.returncode == 0

    def wait_healthy(self, deadline_s: float) -> str | None:
        """``None`` once healthy, else why not."""
        assert self.process is not None
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return f"exited with {self.process.returncode}:\n{self.log_tail()}"
            if self.healthcheck():
                return None
            time.sleep(2)
        return f"not healthy after {deadline_s:.0f}s:\n{self.log_tail()}"

    def rss_mib(self) -> float:
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        return int(match[1]) / 1024 if match else float("nan")

    def stop(self, timeout: float = 40) -> int | None:
        """SIGTERM (what ``docker stop`` sends), then the exit code; SIGKILL if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            return None

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def container(service: str, build: Build, context: Path, workdir: Path, extra_env: dict[str, str]) -> Container:
    """Lay out the runtime stage of ``service`` (its own files, the builder's /opt/venv)."""
    image = parse().image(service)
    root = workdir / f"{service}-runtime"
    shutil.rmtree(root, ignore_errors=True)
    rootfs = Rootfs(root, mapped=("/app", "/usr/local/bin"), others={"/opt/venv": build.venv})
    for copy in image.copies:
        if copy.from_stage is None:
            apply_copy(copy, context, root)
        else:
            assert (copy.from_stage, copy.sources, copy.destination) == ("builder", ["/opt/venv"], "/opt/venv")
    rootfs.path(image.workdir).mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {k: rootfs.rewrite(v) for k, v in image.env.items()}
    env["PATH"] = f"{build.venv / 'bin'}:{SYSTEM_PATH}"
    env.update({"HOST": "127.0.0.1", "PORT": str(port), "LOG_JSON": "false", **extra_env})
    return Container(service, build, rootfs, image, env, port, workdir / f"{service}.log")


def snapshot(*folders: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folders`` with its size and modification time."""
    files = {}
    for folder in folders:
        for root, _, names in os.walk(folder):
            for name in names:
                path = os.path.join(root, name)
                stat = os.lstat(path)
                files[path] = (stat.st_size, stat.st_mtime_ns)
    return files


def context_for(destination: Path) -> Path:
    from tests.deploy.buildsim import build_context

    build_context(destination, REPO)
    return destination
