"""Driving `ilab`: the supported release lines (`versions`) and the command lines the bot
builds for each (`commands`)."""

from instruct_lab_bot.core.ilab.commands import (
    CHAT_ENV,
    CONFIG_DEFAULT,
    BotArgv,
    FlagUse,
    GenerateRun,
    bot_argvs,
    chat_argv,
    config_init_argv,
    generate_run,
    last_value,
    names_config,
    with_ilab_config,
)
from instruct_lab_bot.core.ilab.model_commands import (
    SERVE_CONFIG_NAME,
    ServeRun,
    serve_argv,
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
    "CONFIG_DEFAULT",
    "PROFILES",
    "SERVE_CONFIG_NAME",
    "BotArgv",
    "FlagUse",
    "GenerateRun",
    "IlabProfile",
    "IlabRelease",
    "IlabVersion",
    "ServeRun",
    "UnsupportedIlab",
    "bot_argvs",
    "chat_argv",
    "choose_release",
    "config_init_argv",
    "generate_run",
    "last_value",
    "names_config",
    "nearest_profile",
    "parse_ilab_version",
    "profile_for",
    "serve_argv",
    "with_ilab_config",
]
