"""ilab's configuration as the stand-in plays it: where config.yaml is looked for, the usage
error (exit 2) every command gives without one, and `ilab config init --non-interactive`.

Real ilab reads `--config` or `$XDG_CONFIG_HOME/instructlab/config.yaml` (XDG defaults under
`$HOME`) before any subcommand runs; a missing file is a click usage error. `config init`
creates the storage folders and the file, and clones the public taxonomy when
`--taxonomy-path` is missing or empty (which fails offline, as it does here).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from testkit.ilab_profiles import Profile

TAXONOMY_URL = "https://github.com/instructlab/taxonomy.git"
STORAGE = ("chatlogs", "checkpoints", "datasets", "internal", "phased", "taxonomy")


def _xdg(env: Mapping[str, str], name: str, default: str) -> Path:
    value = env.get(name)
    return Path(value) if value else Path(env.get("HOME", "~")).expanduser() / default


def default_config_path(env: Mapping[str, str]) -> Path:
    return _xdg(env, "XDG_CONFIG_HOME", ".config") / "instructlab" / "config.yaml"


def data_dir(env: Mapping[str, str]) -> Path:
    return _xdg(env, "XDG_DATA_HOME", ".local/share") / "instructlab"


def config_error(config: str | None, env: Mapping[str, str]) -> str | None:
    """ilab defers a missing or bad config until a command group needs it (a usage error)."""
    if config == "DEFAULT":
        return None
    if env.get("ILAB_STANDIN_CONFIG") == "optional" and config is None:
        return None  # tests whose worker does not prepare a config yet
    path = Path(config) if config is not None else default_config_path(env)
    if not path.is_file():
        return (
            f"`{path}` does not exist or is not a readable file.\n"
            "Please run `ilab config init` or point to a valid configuration file using "
            "`--config=<path>`."
        )
    import yaml

    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        return f"Configuration file {path} is not valid YAML: {exc}"
    if loaded is not None and not isinstance(loaded, Mapping):
        return f"Configuration file {path} is not valid: the top level is not a mapping"
    return None


def config_init(profile: Profile, opts: Mapping[str, Any], env: Mapping[str, str]) -> int:
    """Write config.yaml and the storage folders; never prompts (interactive is refused)."""
    if not opts["non_interactive"]:
        sys.stderr.write("ilab-standin: `config init` needs --non-interactive (no terminal)\n")
        return 2
    data = data_dir(env)
    taxonomy = Path(opts["taxonomy_path"] or data / "taxonomy")
    if not taxonomy.is_dir() or not any(taxonomy.iterdir()):
        repository = opts["repository"] or TAXONOMY_URL
        sys.stdout.write(f"Cloning {repository}...\n")
        sys.stdout.write(
            "Failed to clone taxonomy repo: Cmd('git') failed due to: exit code(128)\n"
            f"  cmdline: git clone -v --branch main -- {repository} {taxonomy}\n"
        )
        return 1
    for name in STORAGE:
        (data / name).mkdir(parents=True, exist_ok=True)
    if profile.dated_subfolder:
        (data / "logs" / "generation").mkdir(parents=True, exist_ok=True)
    path = default_config_path(env)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = opts["model_path"] or profile.default_chat_model
    import yaml

    config = {
        "chat": {"model": model, "context": "default"},
        "generate": {
            "pipeline": profile.default_pipeline,
            "taxonomy_path": str(taxonomy),
            "taxonomy_base": opts["taxonomy_base"] or "origin/main",
            "output_dir": str(data / "datasets"),
            "sdg_scale_factor": 30,
            "teacher": {"model_path": profile.default_generate_model},
        },
        "version": "1.0.0",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=True), encoding="utf-8")
    if profile.dated_subfolder:
        sys.stdout.write(f"Generating config file:\n    {path}\n\n")
        sys.stdout.write("Initialization completed successfully!\n")
    else:
        sys.stdout.write(f"Generating `{path}`...\n")
        sys.stdout.write(
            "Initialization completed successfully, you're ready to start using `ilab`. Enjoy!\n"
        )
    return 0
