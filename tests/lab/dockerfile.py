"""A small Dockerfile reader for tests: stages and their instructions, with
line continuations joined and comments dropped, as `docker build` reads them."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path


class DockerfileError(Exception):
    """The Dockerfile does not have the shape this reader understands."""


@dataclass(frozen=True, slots=True)
class Instruction:
    keyword: str
    args: str
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of ENTRYPOINT/CMD/RUN in exec form, else None."""
        if not self.args.startswith("["):
            return None
        value = json.loads(self.args)
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise DockerfileError(f"line {self.line}: exec form must be a list of strings")
        return value

    def flags(self) -> tuple[dict[str, str], list[str]]:
        """`--name=value` flags and the remaining words (COPY, FROM, ...)."""
        flags: dict[str, str] = {}
        words = shlex.split(self.args)
        while words and words[0].startswith("--"):
            name, _, value = words.pop(0)[2:].partition("=")
            flags[name] = value
        return flags, words


@dataclass(frozen=True, slots=True)
class Stage:
    base: str
    name: str | None
    instructions: tuple[Instruction, ...]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def env(self) -> dict[str, str]:
        """ENV in the `KEY=value ...` form (the only one kvip's Dockerfile uses)."""
        env: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for word in shlex.split(instruction.args):
                key, sep, value = word.partition("=")
                if not sep:
                    raise DockerfileError(f"line {instruction.line}: use ENV KEY=value")
                env[key] = value
        return env


def instructions(text: str) -> list[Instruction]:
    found: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        # Comment lines are dropped even inside a continuation, as BuildKit does.
        if not stripped or stripped.startswith("#"):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        keyword, _, args = " ".join(pending).partition(" ")
        found.append(Instruction(keyword.upper(), args.strip(), start))
        pending = []
    if pending:
        raise DockerfileError("the last instruction ends with a line continuation")
    return found


def parse(path: Path) -> list[Stage]:
    stages: list[Stage] = []
    current: list[Instruction] = []
    head: Instruction | None = None
    for instruction in instructions(path.read_text()):
        if instruction.keyword == "FROM":
            if head is not None:
                stages.append(_stage(head, current))
            head, current = instruction, []
        elif head is None:
            if instruction.keyword != "ARG":
                raise DockerfileError(f"line {instruction.line}: {instruction.keyword} before FROM")
        else:
            current.append(instruction)
    if head is None:
        raise DockerfileError("no FROM")
    stages.append(_stage(head, current))
    return stages


def _stage(head: Instruction, body: list[Instruction]) -> Stage:
    _, words = head.flags()
    if len(words) == 3 and words[1].upper() == "AS":
        return Stage(words[0], words[2], tuple(body))
    if len(words) == 1:
        return Stage(words[0], None, tuple(body))
    raise DockerfileError(f"line {head.line}: FROM image [AS name]")
