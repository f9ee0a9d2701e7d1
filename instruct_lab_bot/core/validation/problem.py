"""A `Problem`: one finding, at the GitHub line where a contributor would fix it."""

from dataclasses import dataclass
from typing import Literal, NoReturn

from yaml.nodes import Node

from instruct_lab_bot.core.validation.yaml_reader import Lines

Level = Literal["failure", "warning", "notice"]


@dataclass(frozen=True)
class Problem:
    """One finding, placed where a contributor would fix it."""

    path: str  # repo-relative, e.g. compositional_skills/x/y/qna.yaml
    line: int  # 1-based line of the offending key/value (1 if unknown)
    end_line: int
    level: Level  # GitHub annotation_level
    message: str  # what is wrong and how to fix it, plain text
    title: str  # short, e.g. "Too few seed examples"


def problem_at(path: str, line: int, level: Level, title: str, message: str) -> Problem:
    line = max(1, line)
    return Problem(path=path, line=line, end_line=line, level=level, message=message, title=title)


class Stop(Exception):
    """Ends a check early with its problem (as the CI parser returns early)."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.title)
        self.problem = problem


@dataclass(frozen=True)
class Reporter:
    """Problems for one file, every line clamped into the file as GitHub counts its lines."""

    path: str
    lines: Lines

    def problem(self, line: int, level: Level, title: str, message: str) -> Problem:
        return problem_at(self.path, self.lines.clamp(line), level, title, message)

    def stop(self, line: int, title: str, message: str, *, raw_line: bool = False) -> NoReturn:
        """End the check with one failure; `raw_line` for lines counted in undecoded bytes."""
        clamped = line if raw_line else self.lines.clamp(line)
        raise Stop(problem_at(self.path, clamped, "failure", title, message))

    def node_line(self, node: Node | None) -> int:
        if node is None or node.start_mark is None:
            return 1
        return self.lines.line_of(node.start_mark.index)
