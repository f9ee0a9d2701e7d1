"""Problems for a validation cut short by its bounds (number of files, time): a PR is never
passed because the bot did not look at all of it (pure)."""

from collections.abc import Sequence

from instruct_lab_bot.core.messages import validation as wording
from instruct_lab_bot.core.validation.problem import Problem, problem_at


def too_many_files(paths: Sequence[str], limit: int) -> list[Problem]:
    """One failure (at the first file) when `paths` is over `limit`; none otherwise."""
    if len(paths) <= limit:
        return []
    message = wording.msg_too_many_files(len(paths), limit)
    return [problem_at(paths[0], 1, "failure", wording.TITLE_TOO_MANY_FILES, message)]


def not_checked(paths: Sequence[str], seconds: float) -> list[Problem]:
    """A failure for each file whose check did not finish within `seconds`."""
    message = wording.msg_not_checked(seconds)
    return [problem_at(path, 1, "failure", wording.TITLE_NOT_CHECKED, message) for path in paths]
