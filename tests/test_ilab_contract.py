"""The contract check's own logic, on a click tree shaped like ilab 0.26's (the real releases
are checked by `make ilab-contract`): it passes the bot's command lines, and catches a renamed
flag, a switch that became an option, and a profile passing a flag the release lacks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from instruct_lab_bot.core.ilab import PROFILES
from testkit.ilab_contract.__main__ import problems_of, specs
from testkit.ilab_contract.check import check_all, option, rename

V026 = PROFILES[1]
DEFAULTS = {"chat": {"model": "granite.gguf", "context": "default"}, "generate": {}}


def _tree(qq_is_flag: bool = True) -> click.Group:
    """`ilab` with `data generate`, `model chat`, `config init` and `--version`, declared the
    way 0.26.1 declares them (flag names, types, is_flag, nargs)."""

    @click.group()
    @click.option("--config", "config_file", type=click.Path())
    @click.version_option(version="0.26.1", prog_name="ilab")
    def ilab() -> None: ...

    @ilab.group()
    def data() -> None: ...

    @data.command()
    @click.option("--model", "model_path")
    @click.option("--taxonomy-path", type=click.Path())
    @click.option("--taxonomy-base")
    @click.option("--output-dir", type=click.Path())
    @click.option("--endpoint-url", type=click.STRING)
    @click.option("--model-family", type=click.STRING)
    @click.option("--pipeline", type=click.STRING)
    @click.option("--sdg-scale-factor", type=click.INT)
    def generate(**_: Any) -> None: ...

    @ilab.group()
    def model() -> None: ...

    @model.command()
    @click.argument("question", nargs=-1, type=click.UNPROCESSED)
    @click.option("-m", "--model", required=True)
    @click.option("-c", "--context", required=True)
    @click.option("-qq", "--quick-question", is_flag=qq_is_flag)
    @click.option("-nd", "--no-decoration", is_flag=True)
    def chat(**_: Any) -> None: ...

    @model.command(context_settings={"allow_extra_args": True})
    @click.option("--model-path", type=click.Path(path_type=Path), required=True)
    @click.option("--backend", type=click.Choice(("llama-cpp", "vllm")))
    @click.option("-h", "--host", type=str)
    @click.option("-p", "--port", type=int)
    def serve(**_: Any) -> None: ...

    @model.command()
    @click.option("--model-path", type=click.Path(path_type=Path))
    @click.option("--num-epochs", type=click.INT)
    @click.option("--ckpt-output-dir", type=click.Path())
    @click.option("--data-output-dir", type=click.Path())
    @click.option("--input-dir", type=click.Path())
    @click.option("--data-path", type=click.Path())
    @click.option("--effective-batch-size", type=click.INT)
    @click.option("--learning-rate", type=click.FLOAT)
    @click.option("--pipeline", type=click.Choice(("simple", "full", "accelerated")))
    @click.option("--device", type=click.Choice(("cpu", "cuda", "hpu", "mps")))
    def train(**_: Any) -> None: ...

    @ilab.group()
    def config() -> None: ...

    @config.command()
    @click.option("--interactive/--non-interactive", default=True)
    @click.option("--taxonomy-path", type=click.Path())
    def init(**_: Any) -> None: ...

    return ilab


def _problems(root: click.Group, profile: Any = V026) -> list[str]:
    results = check_all(root, specs(profile), DEFAULTS)
    return problems_of(profile, results)


def test_the_bots_command_lines_parse_as_meant() -> None:
    assert _problems(_tree()) == []


def test_a_renamed_flag_is_caught() -> None:
    root = _tree()
    rename(root, ["data", "generate"], "--taxonomy-path", "--taxonomy-dir")
    found = _problems(root)
    assert any("--taxonomy-path: no such option" in p for p in found)
    assert any("click refused it" in p and "--taxonomy-path" in p.split("\n")[1] for p in found)


def test_a_switch_turned_option_is_caught() -> None:
    found = _problems(_tree(qq_is_flag=False))
    assert any("-qq: takes a value" in p for p in found)


def test_a_profile_passing_a_flag_the_release_lacks_is_caught() -> None:
    wrong = replace(V026, chat_plain_flags=("--no-decorations",))
    found = _problems(_tree(), wrong)
    assert any("--no-decorations: no such option" in p for p in found)


def test_a_version_other_than_the_profiles_is_caught() -> None:
    older = replace(V026, tested="0.26.0")
    assert any("not 0.26.0" in p for p in _problems(_tree(), older))


def test_option_finds_the_second_flag_of_a_switch_pair() -> None:
    init = _tree().commands["config"]
    assert isinstance(init, click.Group)
    found = option(init.commands["init"], "--non-interactive")
    assert found is not None and found.is_flag
