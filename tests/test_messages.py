import re

from instruct_lab_bot.core import messages
from instruct_lab_bot.core.command_table import COMMAND_TABLE, DEFAULT_RESTRICTED
from instruct_lab_bot.core.jobs import Job, State
from instruct_lab_bot.core.messages import Artifact, JobResult
from instruct_lab_bot.core.messages import commands as msg_commands
from instruct_lab_bot.core.messages import generate as msg_generate
from instruct_lab_bot.core.messages import precheck as msg_precheck
from instruct_lab_bot.core.messages import status as msg_status
from instruct_lab_bot.core.messages import welcome as msg_welcome
from instruct_lab_bot.core.output_preview import Sample
from instruct_lab_bot.core.permissions import Policy
from instruct_lab_bot.core.progress import Progress

JOB = Job(
    id="job1",
    command="generate",
    installation_id=1,
    owner="o",
    repo="taxonomy",
    pr_number=5,
    requester="alice",
    head_sha="a" * 40,
    check_run_id=3,
    worker="w1",
    started_at=1.0,
)


def test_escaping_defuses_markdown_html_and_mentions() -> None:
    cell = messages.table_cell("a | b <script>x</script> @octocat [l](http://e)\nnext")
    assert "|" not in cell.replace("\\|", "")
    assert "<script>" not in cell
    assert "@octocat" not in cell and "@\u200boctocat" in cell
    assert "<br>" in cell and "\n" not in cell
    assert messages.table_cell("x" * 1000).endswith("…")


def test_code_block_cannot_be_closed_from_inside_and_fits() -> None:
    block = messages.code_block(["```", "ok"], 1000)
    assert block.startswith("````\n") and block.endswith("\n````")
    big = messages.code_block([f"line {i} " + "x" * 100 for i in range(10_000)], 5000)
    assert len(big) <= 5000 and "line 9999" in big


def test_progress_payload_under_github_caps() -> None:
    progress = Progress()
    for i in range(300):
        progress.feed("y" * 1000 + str(i))
    progress.feed(
        "gen_skill_freeform Prompt Generation:  40%|████      | 2/5 [00:03<00:04,  1.50s/it]"
    )
    payload = messages.check_run_progress(JOB, progress)
    output = payload["output"]
    assert isinstance(output, dict)
    assert output["title"] == "gen_skill_freeform Prompt Generation: 40% (2/5), ETA 00:04"
    assert len(output["text"]) <= messages.CHECK_OUTPUT_LIMIT
    assert len(output["summary"]) <= messages.CHECK_OUTPUT_LIMIT


def test_success_comment_has_counts_preview_and_links() -> None:
    result = JobResult(
        state=State.SUCCEEDED,
        duration=185,
        generated=12,
        discarded=2,
        samples=[Sample(f"Q{i} | pipe", f"A{i}\nline") for i in range(8)],
        artifacts=[Artifact("train.jsonl", "http://x/a?sig=1", 2048)],
        index_url="http://x/i",
    )
    body = messages.result_comment(JOB, result)
    assert "**12** samples generated, **2** discarded" in body
    assert "3m 05s" in body and "a" * 40 in body
    assert len(re.findall(r"^\| \d+ \| Q", body, re.M)) == 5  # preview capped at 5 rows
    assert "[train.jsonl](http://x/a?sig=1) (2.0 KB)" in body
    completed = messages.check_run_completed(JOB, result)
    assert completed["conclusion"] == "success"


def test_failure_comment_has_error_and_collapsed_log() -> None:
    result = JobResult(
        state=State.FAILED,
        duration=3,
        exit_code=1,
        error="boom",
        log_tail=[f"log {i}" for i in range(80)],
    )
    body = messages.result_comment(JOB, result)
    assert "**Error:** boom" in body and "<details>" in body
    assert "log 79" in body and "log 29" not in body  # only the last 50 lines
    assert messages.check_run_completed(JOB, result)["conclusion"] == "failure"
    timed_out = JobResult(state=State.TIMED_OUT, duration=7200)
    assert messages.check_run_completed(JOB, timed_out)["conclusion"] == "timed_out"


def test_outages_say_not_your_fault_and_contributor_mistakes_do_not() -> None:
    from instruct_lab_bot.core.job_outcome import crash_cause

    mistake = messages.result_comment(JOB, JobResult(State.FAILED, 3, exit_code=1, error="bad"))
    assert "Not your fault" not in mistake and "**Error:** bad" in mistake
    page = "https://bot.example/repos/instructlab/taxonomy/pulls/7"
    for cause in ("ilab_crashed", "storage", "github", "worker"):
        result = JobResult(State.FAILED, 3, error="x", infrastructure=cause, status_url=page)
        body = messages.result_comment(JOB, result)
        assert "🛠️ **Not your fault:**" in body and "an admin has been notified" in body
        assert f"[Status page]({page})" in body
    assert "it will be retried" in str(messages.check_run_handed_back(JOB)["output"])
    assert crash_cause(State.FAILED, None) == crash_cause(State.FAILED, 137) == "ilab_crashed"
    assert crash_cause(State.FAILED, 1) == crash_cause(State.SUCCEEDED, 0) == ""


def test_comment_is_cut_to_github_limit() -> None:
    result = JobResult(state=State.FAILED, duration=1, error="e" * 100_000)
    assert len(messages.result_comment(JOB, result)) <= messages.COMMENT_LIMIT


# -- texts generated from the command table -------------------------------------------------

POLICY = Policy("write", ("instructlab/reviewers",), frozenset(DEFAULT_RESTRICTED))


def test_help_lists_every_row_of_the_table_with_who_may_run_it() -> None:
    text = messages.help_text("bot", POLICY, ("ready",))
    rows = [line for line in text.splitlines() if line.startswith("| `@bot ")]
    assert rows == [
        f"| `@bot {s.name}` | {s.help} | {'restricted' if s.restricted else 'anyone'} |"
        for s in COMMAND_TABLE
    ]
    assert "at least **write** access" in text and "`instructlab/reviewers`" in text
    assert text.endswith("`generate` and `precheck` need one of these labels on the PR: `ready`.")
    assert "need one of these labels" not in messages.help_text("bot", POLICY)


def test_unknown_command_suggests_and_lists_the_table() -> None:
    text = messages.unknown_command("bot", "generat", "generate")
    assert "Did you mean `@bot generate`?" in text
    assert "`help`, `generate`, `precheck`, `status`, `retry`, `cancel`" in text
    assert "Did you mean" not in messages.unknown_command("bot", "<b>x", None)
    assert "<b>" not in messages.unknown_command("bot", "<b>x", None)


def test_welcome_carries_its_marker_and_the_help() -> None:
    text = messages.welcome("bot", "alice", POLICY)
    assert text.startswith(messages.WELCOME_MARKER)
    assert "@alice" in text and messages.help_text("bot", POLICY) in text


def test_denied_and_refusals_name_the_command() -> None:
    assert "`generate` may only be run by people with at least **write**" in messages.denied(
        "generate", "rae", POLICY
    )
    check_run = messages.labels_check_run("precheck", "b" * 40, ("ready",))
    assert check_run["conclusion"] == "action_required"
    assert check_run["name"] == messages.check_name("precheck")
    assert "`ready`" in messages.labels_needed("precheck", ("ready",))


def test_a_repeat_links_the_live_or_succeeded_job() -> None:
    url = "https://github.com/o/taxonomy/runs/3"
    live = messages.already_running(JOB.evolve(state=State.RUNNING), url)
    assert "already running" in live and f"({url})" in live and "@alice" in live
    done = messages.already_succeeded(JOB.evolve(state=State.SUCCEEDED), url)
    assert "`generate` already succeeded for aaaaaaa" in done and f"({url})" in done
    assert "Nothing new was queued" in done and "Re-run" in done
    assert "job `job1`" in messages.already_succeeded(JOB.evolve(check_run_id=0), url)


def test_facade_re_exports_each_subject_module() -> None:
    for module in (msg_commands, msg_generate, msg_precheck, msg_status, msg_welcome):
        for name in dir(module):
            if not name.startswith("_") and name in messages.__all__:
                assert getattr(messages, name) is getattr(module, name)
    assert messages.result_comment is msg_generate.result_comment
    assert messages.help_text is msg_commands.help_text
    assert all(hasattr(messages, name) for name in messages.__all__)
