"""Read deploy/Dockerfile and .dockerignore the way a container builder does, without one.

There is no container engine on the test machines, so the deployment tests parse the
Dockerfile into stages, resolve the chain of stages an image is built from for a given
``SERVICE``, apply ``.dockerignore`` to assemble the build context, and replay the
builder's ``COPY`` and ``RUN`` steps on the host (see test_images.py).
"""

import os
import re
import shlex
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
SERVICES = ("gateway", "speech", "text", "image", "fusion", "asr")
PORTS = {"gateway": 8000, "speech": 8001, "text": 8002, "image": 8003, "fusion": 8004, "asr": 8005}

VARIABLE = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int

    def words(self) -> list[str]:
        """Arguments as a list: JSON (exec) form or shell words."""
        text = self.args.strip()
        if text.startswith("["):
            import json

            return list(json.loads(text))
        return shlex.split(text)

    def flags(self) -> tuple[dict[str, str], list[str]]:
        """``--name=value`` options, then the rest as words (exec form after a keyword included).

        ``HEALTHCHECK --interval=5s CMD ["python", "-c", "..."]`` gives
        ``({"interval": "5s"}, ["CMD", "python", "-c", "..."])``.
        """
        options: dict[str, str] = {}
        rest = self.args.strip()
        while match := re.match(r"--([\w-]+)(?:=(\S*))?\s*", rest):
            options[match[1]] = match[2] or ""
            rest = rest[match.end() :]
        keyword, _, remainder = rest.partition(" ")
        if keyword in {"CMD", "NONE"}:
            remainder = remainder.strip()
            if remainder.startswith("["):
                import json

                return options, [keyword, *json.loads(remainder)]
            return options, [keyword, "/bin/sh", "-c", remainder] if remainder else [keyword]
        return options, shlex.split(rest)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


@dataclass
class Dockerfile:
    global_args: dict[str, str | None]
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"no stage named {name!r}")

    def chain(self, service: str, target: str | None = None) -> list[Stage]:
        """Stages the final image of ``service`` is made of, outermost (the external base) first."""
        args = {k: v for k, v in self.global_args.items() if v is not None}
        args["SERVICE"] = service
        stage = self.stage(target) if target else self.stages[-1]
        chain = [stage]
        while True:
            base = substitute(stage.base, args)
            names = {s.name for s in self.stages}
            if base not in names:
                break
            stage = self.stage(base)
            chain.append(stage)
        return list(reversed(chain))

    def image(self, service: str, target: str | None = None) -> "Image":
        """The settings of the image built with ``SERVICE=service`` (ENV, USER, HEALTHCHECK...)."""
        args = {k: v for k, v in self.global_args.items() if v is not None}
        args["SERVICE"] = service
        chain = self.chain(service, target)
        image = Image(stages=chain, base=substitute(chain[0].base, args))
        env: dict[str, str] = {}
        for stage in image.stages:
            stage_args = dict(args)
            for instruction in stage.instructions:
                scope = {**stage_args, **env}
                if instruction.keyword == "ARG":
                    name, _, default = instruction.args.partition("=")
                    if name in args:
                        stage_args[name] = args[name]
                    elif default:
                        stage_args[name] = substitute(default, scope)
                elif instruction.keyword == "ENV":
                    for key, value in parse_env(instruction.args).items():
                        env[key] = substitute(value, scope)
                elif instruction.keyword == "RUN":
                    image.steps.append(Run(instruction.args, workdir=image.workdir, env={**stage_args, **env}))
                elif instruction.keyword == "USER":
                    image.user = instruction.args.strip()
                elif instruction.keyword == "WORKDIR":
                    image.workdir = substitute(instruction.args.strip(), scope)
                elif instruction.keyword == "HEALTHCHECK":
                    image.healthcheck = instruction
                elif instruction.keyword == "ENTRYPOINT":
                    image.entrypoint = instruction.words()
                elif instruction.keyword == "CMD":
                    image.cmd = instruction.words()
                elif instruction.keyword == "EXPOSE":
                    image.expose = substitute(instruction.args.strip(), scope)
                elif instruction.keyword in {"COPY", "ADD"}:
                    options, words = instruction.flags()
                    sources = [substitute(w, scope) for w in words[:-1]]
                    destination = substitute(words[-1], scope)
                    if not destination.startswith("/"):
                        destination = f"{image.workdir.rstrip('/')}/{destination}"
                    copy = Copy(options.get("from"), sources, destination)
                    image.copies.append(copy)
                    image.steps.append(copy)
        image.env = env
        return image


@dataclass
class Copy:
    from_stage: str | None
    sources: list[str]
    destination: str


@dataclass
class Run:
    command: str
    workdir: str
    env: dict[str, str]


@dataclass
class Image:
    stages: list[Stage]
    base: str
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    workdir: str = "/"
    healthcheck: Instruction | None = None
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    expose: str | None = None
    copies: list[Copy] = field(default_factory=list)
    steps: list[Copy | Run] = field(default_factory=list)


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Instruction lines with ``\\`` continuations joined and comments dropped."""
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are ignored by BuildKit
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer.append(stripped[:-1].rstrip())
            continue
        buffer.append(stripped)
        yield start, " ".join(part for part in buffer if part)
        buffer = []
    if buffer:
        yield start, " ".join(buffer)


def parse(path: Path = DOCKERFILE) -> Dockerfile:
    global_args: dict[str, str | None] = {}
    stages: list[Stage] = []
    for number, line in logical_lines(path.read_text()):
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif not stages:
            if keyword != "ARG":
                raise ValueError(f"line {number}: only ARG may come before the first FROM")
            name, eq, default = args.strip().partition("=")
            global_args[name] = default if eq else None
        else:
            stages[-1].instructions.append(Instruction(keyword, args.strip(), number))
    return Dockerfile(global_args, stages)


def parse_env(args: str) -> dict[str, str]:
    """``ENV A=1 B="two words"`` (the legacy ``ENV A 1`` form too)."""
    words = shlex.split(args)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words)


def substitute(text: str, variables: dict[str, str]) -> str:
    """Expand ``$VAR``, ``${VAR}`` and ``${VAR:-default}`` like the Dockerfile frontend."""

    def replace(match: re.Match[str]) -> str:
        name = match["braced"] or match["bare"]
        value = variables.get(name)
        if value is None or (value == "" and match["default"] is not None):
            return match["default"] or ""
        return value

    return VARIABLE.sub(replace, text)


# --- .dockerignore ------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Go ``filepath.Match`` syntax plus ``**`` (any number of folders), as in moby's patternmatcher."""
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            if pattern.startswith("**/", i):
                out.append("(?:.*/)?")
                i += 3
            else:
                out.append(".*")
                i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end]
            if body.startswith(("^", "!")):
                body = "^" + body[1:]
            out.append(f"[{body}]")
            i = end
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out) + r"\Z")


@dataclass
class DockerIgnore:
    rules: list[tuple[bool, str, re.Pattern[str]]]

    @classmethod
    def load(cls, path: Path = DOCKERIGNORE) -> "DockerIgnore":
        rules = []
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            pattern = os.path.normpath(line[1:].strip() if negate else line).lstrip("/")
            rules.append((negate, pattern, _pattern_regex(pattern)))
        return cls(rules)

    def excluded(self, relative: str) -> bool:
        """Whether the builder leaves ``relative`` (a posix path in the context) out."""
        parts = relative.strip("/").split("/")
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        result = False
        for negate, _, regex in self.rules:
            if any(regex.match(candidate) for candidate in candidates):
                result = not negate
        return result

    def may_include_below(self, directory: str) -> bool:
        """Whether some ``!`` rule could re-include a path under an excluded ``directory``."""
        parts = directory.strip("/").split("/")
        for negate, pattern, _ in self.rules:
            if not negate:
                continue
            pattern_parts = pattern.split("/")
            if "**" in pattern_parts[: len(parts)] or all(
                _pattern_regex(p).match(d) for p, d in zip(pattern_parts, parts, strict=False)
            ):
                return True
        return False


def build_context(destination: Path, repo: Path = REPO) -> list[str]:
    """Copy what the builder would receive as its context into ``destination``; list the files."""
    ignore = DockerIgnore.load(repo / ".dockerignore")
    files = []
    for root, dirs, names in os.walk(repo):
        relative_root = Path(root).relative_to(repo).as_posix()
        prefix = "" if relative_root == "." else f"{relative_root}/"
        dirs[:] = [d for d in dirs if not ignore.excluded(prefix + d) or ignore.may_include_below(prefix + d)]
        for name in names:
            relative = prefix + name
            if ignore.excluded(relative):
                continue
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(root) / name, target)
            files.append(relative)
    return sorted(files)


def apply_copy(copy: Copy, context: Path, rootfs: Path) -> None:
    """Replay a context ``COPY`` into ``rootfs`` with Docker's rules for folders and files."""
    destination = rootfs / copy.destination.lstrip("/")
    for source in copy.sources:
        path = context / source.rstrip("/")
        if not path.exists():
            raise FileNotFoundError(f"COPY {source}: not in the build context")
        if path.is_dir():
            # A folder's *contents* land in the destination folder.
            shutil.copytree(path, destination, dirs_exist_ok=True)
        else:
            into_folder = copy.destination.endswith("/") or len(copy.sources) > 1
            target = destination / path.name if into_folder else destination
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
