from hypothesis import given, settings
from hypothesis import strategies as st

from instruct_lab_bot.core.command_table import COMMAND_TABLE, KNOWN_COMMANDS
from instruct_lab_bot.core.comment_parser import mentions, parse_commands, suggest
from instruct_lab_bot.core.settings import Settings
from tests.fixtures.bot import BOT_NAME, MENTION


def names(body: str) -> list[str]:
    return [c.name for c in parse_commands(body, BOT_NAME)]


def test_command_at_line_start_case_insensitive() -> None:
    assert names(f"{MENTION} generate") == ["generate"]
    assert names(f"{MENTION.upper()} GENERATE please") == ["generate"]
    assert names(f"Thanks!\n  {MENTION} generate\n") == ["generate"]


def test_several_commands_keep_their_order_and_args() -> None:
    commands = parse_commands(f"{MENTION} generate\r\n{MENTION} precheck --fast\n", BOT_NAME)
    assert [(c.name, c.args, c.line) for c in commands] == [
        ("generate", (), 1),
        ("precheck", ("--fast",), 2),
    ]
    assert commands[0].known and commands[1].known
    assert not parse_commands(f"{MENTION} frobnicate", BOT_NAME)[0].known


def test_not_a_command() -> None:
    assert names(f"please {MENTION} generate") == []  # not at line start
    assert names(f"{MENTION}-dev generate") == []  # another login
    assert names(f"{MENTION}") == []  # bare mention
    assert names(f"> {MENTION} generate") == []  # quoted reply
    assert names(f"```\n{MENTION} generate\n```") == []  # inside a code fence
    assert names(f"~~~~\n{MENTION} generate\n~~~~\n{MENTION} generate") == ["generate"]
    assert names(f"    {MENTION} generate") == []  # indented code block


def test_limit_and_mentions() -> None:
    body = "\n".join([f"{MENTION} generate"] * 50)
    assert len(parse_commands(body, BOT_NAME)) == 10
    assert mentions(f"{MENTION}", BOT_NAME)
    assert not mentions("hello", BOT_NAME)


# -- properties ---------------------------------------------------------------------------


USERNAME = BOT_NAME
texty = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=400)
lines = st.lists(
    st.one_of(
        texty,
        st.sampled_from(
            [
                f"{MENTION} generate",
                "@INSTRUCT-LAB-BOT status now",
                f"> {MENTION} help",
                "```",
                "~~~",
                f"    {MENTION} cancel",
                f"{MENTION}-x generate",
                f"x {MENTION} retry",
                f"{MENTION}",
                f"\t{MENTION} precheck",
            ]
        ),
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None, database=None)
@given(body=st.one_of(texty, lines.map("\n".join), lines.map("\r\n".join)))
def test_parser_never_raises_and_only_finds_line_start_mentions(body: str) -> None:
    commands = parse_commands(body, USERNAME)
    assert len(commands) <= 10
    source = body.replace("\r\n", "\n").split("\n")
    for command in commands:
        line = source[command.line - 1]
        stripped = line.lstrip(" \t")
        assert len(line) - len(stripped) <= 3  # at the start of the line (not a code block)
        assert stripped.lower().startswith("@" + USERNAME)  # the exact mention
        rest = stripped[len(USERNAME) + 1 :]
        assert not rest[:1].isalnum() and rest[:1] != "-"  # not a longer login
        assert command.name == rest.removeprefix("[bot]").split()[0].lower()


@settings(max_examples=200, deadline=None, database=None)
@given(prefix=texty.filter(lambda t: "\n" not in t and "\r" not in t and t.strip() != ""))
def test_text_before_the_mention_means_no_command(prefix: str) -> None:
    body = f"{prefix.strip()} {MENTION} generate"
    if body.lstrip().lower().startswith(f"{MENTION}"):
        return  # the prefix itself is the mention
    assert parse_commands(body, USERNAME) == []


# -- the command table ------------------------------------------------------------------


def test_known_commands_come_from_the_table_in_help_order() -> None:
    assert tuple(spec.name for spec in COMMAND_TABLE) == KNOWN_COMMANDS
    assert KNOWN_COMMANDS == (
        "help",
        "generate",
        "precheck",
        "status",
        "retry",
        "cancel",
        "links",
        "train",
        "test",
        "serve",
        "chat",
    )
    assert all(spec.help and spec.name.islower() for spec in COMMAND_TABLE)


def test_suggestions_and_specs_come_from_the_table() -> None:
    assert suggest("generat") == "generate"
    assert suggest("CANCLE") == "cancel"
    assert suggest("xyzzy") is None
    command = parse_commands(f"{MENTION} retry", BOT_NAME)[0]
    assert command.spec is not None and command.spec.name == "retry"
    assert parse_commands(f"{MENTION} retyr", BOT_NAME)[0].spec is None


def test_former_names_are_obeyed_and_marked() -> None:
    former = Settings().legacy_usernames
    assert former == ("instruct-lab-bot",) and BOT_NAME == "instructlab-bot"
    body = f"@{former[0]} generate\n{MENTION} status\n@{former[0]}-x help"
    commands = parse_commands(body, BOT_NAME, aliases=former)
    assert [(c.name, c.legacy) for c in commands] == [("generate", True), ("status", False)]
    assert parse_commands(f"@{former[0]} generate", BOT_NAME) == []  # no alias, no command
