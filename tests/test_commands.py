from instruct_lab_bot.commands import mentions, parse_commands


def names(body: str) -> list[str]:
    return [c.name for c in parse_commands(body, "instruct-lab-bot")]


def test_command_at_line_start_case_insensitive() -> None:
    assert names("@instruct-lab-bot generate") == ["generate"]
    assert names("@Instruct-Lab-Bot GENERATE please") == ["generate"]
    assert names("Thanks!\n  @instruct-lab-bot generate\n") == ["generate"]


def test_several_commands_keep_their_order_and_args() -> None:
    commands = parse_commands(
        "@instruct-lab-bot generate\r\n@instruct-lab-bot precheck --fast\n", "instruct-lab-bot"
    )
    assert [(c.name, c.args, c.line) for c in commands] == [
        ("generate", (), 1),
        ("precheck", ("--fast",), 2),
    ]
    assert commands[0].known and commands[1].known
    assert not parse_commands("@instruct-lab-bot frobnicate", "instruct-lab-bot")[0].known


def test_not_a_command() -> None:
    assert names("please @instruct-lab-bot generate") == []  # not at line start
    assert names("@instruct-lab-bot-dev generate") == []  # another login
    assert names("@instruct-lab-bot") == []  # bare mention
    assert names("> @instruct-lab-bot generate") == []  # quoted reply
    assert names("```\n@instruct-lab-bot generate\n```") == []  # inside a code fence
    assert names("~~~~\n@instruct-lab-bot generate\n~~~~\n@instruct-lab-bot generate") == [
        "generate"
    ]
    assert names("    @instruct-lab-bot generate") == []  # indented code block


def test_limit_and_mentions() -> None:
    body = "\n".join(["@instruct-lab-bot generate"] * 50)
    assert len(parse_commands(body, "instruct-lab-bot")) == 10
    assert mentions("@instruct-lab-bot", "instruct-lab-bot")
    assert not mentions("hello", "instruct-lab-bot")
