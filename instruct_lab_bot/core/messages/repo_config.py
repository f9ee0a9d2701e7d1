"""Texts about a repository's own configuration file (pure): its check run on the default
branch, its line in `status` replies, and the answer to a command it switched off."""

from __future__ import annotations

from instruct_lab_bot.core.messages.format import escape_md, iso_now, short_sha
from instruct_lab_bot.core.repo_config import LoadedConfig

CONFIG_CHECK = "instruct-lab-bot/config"
MAX_ANNOTATIONS = 50  # GitHub takes at most 50 annotations per request


def config_check_run(loaded: LoadedConfig) -> dict[str, object]:
    """The check run on the default branch head: success, or failure with one annotation per
    error at its line (GitHub shows them on the file)."""
    path = loaded.path
    if not loaded.broken:
        return {
            "name": CONFIG_CHECK,
            "head_sha": loaded.sha,
            "status": "completed",
            "conclusion": "success",
            "completed_at": iso_now(),
            "output": {
                "title": f"{path} is valid",
                "summary": f"`{path}` applies to this repository.",
            },
        }
    count = len(loaded.errors)
    return {
        "name": CONFIG_CHECK,
        "head_sha": loaded.sha,
        "status": "completed",
        "conclusion": "failure",
        "completed_at": iso_now(),
        "output": {
            "title": f"{path}: {count} error{'s' if count != 1 else ''}",
            "summary": broken_summary(loaded),
            "annotations": [
                {
                    "path": path,
                    "start_line": error.line,
                    "end_line": error.line,
                    "annotation_level": "failure",
                    "title": "instruct-lab-bot configuration",
                    "message": error.message,
                }
                for error in loaded.errors[:MAX_ANNOTATIONS]
            ],
        },
    }


def broken_summary(loaded: LoadedConfig) -> str:
    errors = "\n".join(
        f"- line {e.line}: {escape_md(e.message)}" for e in loaded.errors[:MAX_ANNOTATIONS]
    )
    return (
        f"`{loaded.path}` at {short_sha(loaded.sha)} has errors, so this repository uses the "
        f"bot's admin defaults until they are fixed:\n\n{errors}"
    )


def config_status(loaded: LoadedConfig) -> str:
    """One paragraph for the `status` reply: which configuration applies."""
    if not loaded.sha or not loaded.found:
        return "Configuration: the bot's admin defaults (this repository has no own file)."
    where = f"`{loaded.path}` at {short_sha(loaded.sha)}"
    if loaded.broken:
        return "⚠️ Configuration: " + broken_summary(loaded)
    return f"Configuration: {where} (valid)."


def command_disabled(command: str, path: str) -> str:
    return f"`{command}` is switched off in this repository (`{path}`); nothing was run."
