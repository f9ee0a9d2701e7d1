import json
from collections.abc import Callable
from typing import Any

import pytest

from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.core.webhooks import (
    CheckRunIntent,
    CommandIntent,
    Delivery,
    PullRequestIntent,
    WebhookError,
    classify,
    intent_from_json,
    parse_delivery,
    sign,
)
from tests.fixtures.bot import BOT_NAME, MENTION

SECRET = b"topsecret"


def deliver(body: bytes, signature: str | None = None, event: str = "issue_comment") -> Delivery:
    return parse_delivery(
        body,
        event=event,
        delivery_id="d-1",
        signature=signature if signature is not None else sign(body, SECRET),
        secret=SECRET,
    )


def test_signature_checked_before_parsing() -> None:
    with pytest.raises(WebhookError) as missing:
        parse_delivery(b"{", event="ping", delivery_id="d", signature=None, secret=SECRET)
    assert missing.value.status == 401
    with pytest.raises(WebhookError) as bad:
        deliver(b"not json", signature=sign(b"other", SECRET))
    assert bad.value.status == 401  # never a 400 for the JSON: it was not parsed
    with pytest.raises(WebhookError) as malformed:
        deliver(b"{}", signature="sha1=abc")
    assert malformed.value.status == 401  # no well-formed signature: unauthenticated
    with pytest.raises(WebhookError) as not_json:
        deliver(b"not json")
    assert not_json.value.status == 400
    with pytest.raises(WebhookError) as no_event:
        parse_delivery(
            b"{}", event=None, delivery_id="d", signature=sign(b"{}", SECRET), secret=SECRET
        )
    assert no_event.value.status == 400


def comment_payload(body: str = f"{MENTION} generate", **changes: object) -> dict[str, object]:
    payload: dict[str, object] = {
        "action": "created",
        "issue": {"number": 4, "pull_request": {"url": "x"}},
        "comment": {
            "id": 11,
            "body": body,
            "user": {"login": "alice", "type": "User"},
            "author_association": "CONTRIBUTOR",
        },
        "repository": {"name": "taxonomy", "owner": {"login": "instructlab"}},
        "installation": {"id": 77},
    }
    payload.update(changes)
    return payload


def test_classify_pr_comment() -> None:
    intent = classify(deliver(json.dumps(comment_payload()).encode()), BOT_NAME)
    assert isinstance(intent, CommandIntent)
    assert (intent.owner, intent.repo, intent.pr_number, intent.installation_id) == (
        "instructlab",
        "taxonomy",
        4,
        77,
    )
    assert intent_from_json(intent.kind, intent.to_json()) == intent


def test_nothing_to_do() -> None:
    def nothing(payload: dict[str, object]) -> bool:
        return classify(deliver(json.dumps(payload).encode()), BOT_NAME) is None

    assert nothing(comment_payload(action="edited"))
    assert nothing(comment_payload(action="deleted"))
    plain = classify(deliver(json.dumps(comment_payload(issue={"number": 4})).encode()), BOT_NAME)
    assert isinstance(plain, CommandIntent) and not plain.on_pull_request  # told: PRs only
    assert nothing(comment_payload("just a comment"))
    bot = comment_payload()
    bot["comment"]["user"]["type"] = "Bot"  # type: ignore[index]
    assert nothing(bot)


def test_bad_shapes_are_400() -> None:
    broken = comment_payload()
    broken["installation"] = None
    with pytest.raises(WebhookError) as info:
        classify(deliver(json.dumps(broken).encode()), BOT_NAME)
    assert info.value.status == 400
    wrong_type = comment_payload(issue={"number": "4", "pull_request": {}})
    wrong_type["issue"] = {"number": "4", "pull_request": {"u": 1}}
    with pytest.raises(WebhookError):
        classify(deliver(json.dumps(wrong_type).encode()), BOT_NAME)


def test_commands_are_capped_and_the_cap_is_said() -> None:
    body = "\n".join([f"{MENTION} status"] * 50)
    intent = classify(deliver(json.dumps(comment_payload(body)).encode()), BOT_NAME)
    assert isinstance(intent, CommandIntent)
    assert len(intent.commands) == 10 and intent.truncated


def test_pull_request_and_check_run_events(webhook_example: Callable[..., dict[str, Any]]) -> None:
    pushed = webhook_example("pull_request", "synchronize")
    intent = classify(deliver(json.dumps(pushed).encode(), event="pull_request"), "bot")
    assert isinstance(intent, PullRequestIntent)
    assert intent.action == "synchronize"
    assert intent.head_sha == pushed["pull_request"]["head"]["sha"]
    assert intent_from_json(intent.kind, intent.to_json()) == intent
    ignored = webhook_example("pull_request", "unlabeled")
    assert classify(deliver(json.dumps(ignored).encode(), event="pull_request"), "bot") is None
    rerun = webhook_example("check_run", "rerequested")
    assert classify(deliver(json.dumps(rerun).encode(), event="check_run"), "bot") is None
    rerun["check_run"]["name"] = "instruct-lab-bot/generate"  # only our own check runs
    rerun["check_run"]["external_id"] = "job-1"
    ours = classify(deliver(json.dumps(rerun).encode(), event="check_run"), "bot")
    assert isinstance(ours, CheckRunIntent) and ours.external_id == "job-1"
    assert intent_from_json(ours.kind, ours.to_json()) == ours


def test_repository_allow_list() -> None:
    payload = comment_payload()
    payload["repository"] = {
        "name": "taxonomy",
        "full_name": "instructlab/taxonomy",
        "owner": {"login": "instructlab"},
    }
    body = json.dumps(payload).encode()
    assert classify(deliver(body), BOT_NAME, repos=frozenset({"instructlab/taxonomy"}))
    assert classify(deliver(body), BOT_NAME, repos=frozenset({"other/repo"})) is None


def test_skip_unparsed_never_hides_a_command() -> None:
    from instruct_lab_bot.core.webhooks import skip_unparsed

    def skip(payload: dict[str, object], event: str = "issue_comment") -> str | None:
        return skip_unparsed(json.dumps(payload).encode(), event, BOT_NAME)

    assert skip(comment_payload("thanks, looks good")) == "created"
    assert skip(comment_payload(f"{MENTION.upper()} generate")) is None  # case-insensitive
    assert skip(comment_payload("@instructlab\\u002dbot generate")) is None  # escapes
    escaped = json.dumps(comment_payload(f"{MENTION} generate"), ensure_ascii=True)
    assert (
        skip_unparsed(escaped.replace("-", "\\u002d").encode(), "issue_comment", BOT_NAME) is None
    )
    assert skip(comment_payload("@instructlab-\u017fot"), "issue_comment") is None  # ſ folds to s
    former = Settings().legacy_usernames
    assert (
        skip_unparsed(  # a former name still obeyed is never skipped
            json.dumps(comment_payload(f"@{former[0]} generate")).encode(),
            "issue_comment",
            BOT_NAME,
            former,
        )
        is None
    )
    assert skip(comment_payload(f"{MENTION} generate", action="edited")) == "edited"
    assert skip({"action": "completed"}, "check_suite") == "completed"
    assert skip({"action": "opened", "number": 1}, "pull_request") is None  # handled
    assert skip({"zen": "x"}, "ping") is None
    assert skip_unparsed(b"[1, 2]", "issue_comment", BOT_NAME) is None  # -> 400
