"""Driving `ilab`: the supported release lines (`versions`) and the command lines the bot
builds for each (`commands`)."""

from instruct_lab_bot.core.ilab.commands import (
    CHAT_ENV,
    BotArgv,
    FlagUse,
    GenerateRun,
    bot_argvs,
    chat_argv,
    config_init_argv,
    generate_run,
    last_value,
)
from instruct_lab_bot.core.ilab.versions import (
    PROFILES,
    IlabProfile,
    IlabRelease,
    IlabVersion,
    UnsupportedIlab,
    choose_release,
    nearest_profile,
    parse_ilab_version,
    profile_for,
)

__all__ = [
    "CHAT_ENV",
    "PROFILES",
    "BotArgv",
    "FlagUse",
    "GenerateRun",
    "IlabProfile",
    "IlabRelease",
    "IlabVersion",
    "UnsupportedIlab",
    "bot_argvs",
    "chat_argv",
    "choose_release",
    "config_init_argv",
    "generate_run",
    "last_value",
    "nearest_profile",
    "parse_ilab_version",
    "profile_for",
]
