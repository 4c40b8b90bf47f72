"""Print the requirements of one service's extra (plus the base dependencies), one per line.

The image builder installs these first, in their own layer, so a code change does not
reinstall torch or TensorFlow; the project itself is then installed with ``--no-deps``.

    python deploy/extra_requirements.py text > requirements.txt
"""

import argparse
import re
import sys
import tomllib
from pathlib import Path

SELF_REFERENCE = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)\[(?P<extras>[^\]]+)\]\s*$")


def requirements(pyproject: dict[str, object], extra: str) -> list[str]:
    """Base dependencies plus ``extra``'s, following ``<project>[other]`` self-references."""
    project = pyproject["project"]
    assert isinstance(project, dict)
    extras: dict[str, list[str]] = project.get("optional-dependencies", {})
    if extra not in extras:
        raise KeyError(f"unknown extra {extra!r}; known: {', '.join(sorted(extras))}")
    own_name = _normalise(project["name"])
    result: list[str] = list(project.get("dependencies", []))
    seen: set[str] = set()
    pending = [extra]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        for requirement in extras[name]:
            match = SELF_REFERENCE.match(requirement)
            if match and _normalise(match["name"]) == own_name:
                pending.extend(part.strip() for part in match["extras"].split(","))
            elif requirement not in result:
                result.append(requirement)
    return result


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("extra", help="the service's extra, e.g. text")
    parser.add_argument("--pyproject", type=Path, default=Path(__file__).with_name("pyproject.toml"))
    args = parser.parse_args(argv)
    path: Path = args.pyproject
    if not path.exists():  # run from the repository rather than from the image's build folder
        path = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        lines = requirements(tomllib.loads(path.read_text()), args.extra)
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
