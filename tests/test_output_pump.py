"""Output pumping a chunk at a time (issue 17) gives what line by line gave: the same redacted
log, the same progress, the same redactions however the secret's name is cased."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from bench.line_flood import block
from instruct_lab_bot.core import redaction
from instruct_lab_bot.core.line_splitter import LineSplitter
from instruct_lab_bot.core.progress import Progress
from instruct_lab_bot.core.redaction import Redactor
from instruct_lab_bot.services.worker.ilab import LineSink
from instruct_lab_bot.services.worker.log_file import CappedLog


def reference(redactor: Redactor, text: str) -> str:
    """Every pattern, unconditionally: what `redact` did before it looked for literals."""
    for secret in redactor.secrets:
        text = text.replace(secret, "***")
    text = redaction._PEM.sub("***", text)
    text = redaction._URL_CREDENTIALS.sub("***@", text)
    text = redaction._AUTH_HEADER.sub(r"\1***", text)
    text = redaction._SECRET_ASSIGNMENT.sub(r"\1***", text)
    return redaction._TOKENISH.sub("***", text)


SAMPLES = [
    "PASSWORD=hunter2hunter2",
    "ApI_KeY: abcd1234",
    "apı_key=abcd1234",  # dotless i: re's (?i) matches it to i
    "ſecret = abcd1234",  # long s
    "private_\u212aey=abcd1234",  # Kelvin sign
    "AUTHORIZATION: Bearer abc.def",
    "AUTHORİZATION: Bearer abc.def",  # dotted capital I: casefold made it two characters
    "clone https://x-access-token:ghs_abcdefghijklmnopqrstuvwxyz@github.com/o/r",
    "token ghp_abcdefghijklmnopqrstuvwxyz0123 and sk-proj-abcdefghijklmnopqrstuv",
    "eyJhbGciOiJI.eyJzdWIiOiIx.c2lnbmF0dXJl AKIAABCDEFGHIJKLMNOP hf_" + "a" * 32,
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY-----",
    "nothing to see here: INFO 2024 instructlab.sdg: Dataset(num_rows: 5)",
    "the value is the-known-secret-value here",
]


@pytest.mark.parametrize("text", SAMPLES)
def test_redact_matches_running_every_pattern(text: str) -> None:
    redactor = Redactor(["the-known-secret-value"])
    assert redactor.redact(text) == reference(redactor, text)
    assert redactor.redact("\n".join(SAMPLES)) == reference(redactor, "\n".join(SAMPLES))


def test_every_character_that_ignorecase_matches_is_in_the_literal_check() -> None:
    """The literal check folds case as `re`'s (?i) does, over the whole Basic Multilingual
    Plane, for every letter of the words it looks for."""
    letters = set(b"".join(redaction._ASSIGNMENT_WORDS).decode() + "authorization")
    for letter in sorted(letters):
        pattern = re.compile("(?i)" + letter)
        for point in range(0x10000):
            char = chr(point)
            if pattern.fullmatch(char):
                raw = char.encode("utf-8", "surrogatepass")
                assert redaction._folded(char, raw) == letter.encode(), (letter, hex(point))


def _sink(tmp_path: Path, name: str, limit: int) -> tuple[LineSink, CappedLog, Progress]:
    progress = Progress()
    log = CappedLog(tmp_path / name, limit)
    return LineSink(progress, log, Redactor(["s3cr3t-value"])), log, progress


@pytest.mark.parametrize("limit", [1 << 30, 64 * 1024])
def test_a_chunk_at_a_time_equals_line_by_line(tmp_path: Path, limit: int) -> None:
    text = block().decode()[: 300 * 1024].replace("flood 7]", "flood 7] password=s3cr3t-value")
    lines = re.split(r"\r\n|\r|\n", text)
    one, one_log, one_progress = _sink(tmp_path, "one.log", limit)
    for line in lines:
        one("stdout", line)
    one_log.close()
    many, many_log, many_progress = _sink(tmp_path, "many.log", limit)
    for start in range(0, len(lines), 997):
        many.lines("stdout", lines[start : start + 997])
    many_log.close()
    assert (tmp_path / "one.log").read_text() == (tmp_path / "many.log").read_text()
    assert "s3cr3t-value" not in (tmp_path / "many.log").read_text()
    assert one_progress == many_progress


def test_a_secret_split_across_two_reads_is_still_caught(tmp_path: Path) -> None:
    """Pipe reads end anywhere; the splitter holds a line's start until its end arrives, so
    the redactor sees the secret whole at every cut."""
    data = (
        b"INFO 2024-07-30 19:57:44,987 x:1: start\n"
        b"echo s3cr3t-value and ghp_abcdefghijklmnopqrstuvwxyz0123\r"
        b"Map:  50%|\xe2\x96\x88 | 1/2 PASSWORD=hunter2hunter2\n"
    )
    for cut in range(len(data) + 1):
        sink, log, _ = _sink(tmp_path, f"cut{cut}.log", 1 << 20)
        splitter = LineSplitter(16 * 1024)
        for piece in (data[:cut], data[cut:]):
            if lines := splitter.feed(piece):
                sink.lines("stdout", lines)
        log.close()
        text = (tmp_path / f"cut{cut}.log").read_text()
        assert text.splitlines() == [
            "INFO 2024-07-30 19:57:44,987 x:1: start",
            "echo *** and ***",
            "Map:  50%|█ | 1/2 PASSWORD=***",
        ], cut


POOL = [
    "",
    "plain text",
    "INFO 2024-07-30 19:57:44,987 instructlab.sdg.generate_data:242: a message",
    "INFO 2024-07-30 19:57:45,001 instructlab.sdg.pipeline:198: Running block: gen_skill",
    "WARNING 2024-07-30 19:57:46,000 instructlab.sdg:1: careful",
    "INFO 2024-07-30 19:57:46,000 instructlab.sdg:1: ",
    "INFOrmation that is not a log line",
    "ERROR 2024-07-30 19:57:47,000 instructlab.sdg:9: failed to generate data with exception: boom",
    "Map (num_proc=8):  40%|████      | 2/5 [00:03<00:04,  1.50s/it]",
    "gen_skill_freeform:  60%|██████    | 3/5 [00:03<00:02,  1.50s/it]",
    "gen_skill_freeform:  80%|████████  | 4/5 [00:04<00:01,  1.50s/it]",
    "12 instructions generated, 2 discarded due to format",
    "Error: something plain went wrong",
    "DEBUG 2024-07-30 19:57:48,000 x:1: debug",
    "Map (num_proc=8):  60%|██████    | 3/5 [00:04<00:02,  1.50s/it]",
    "Map: 100%|██████████| 5/5 [00:01<00:00]failed to generate data with exception: bad",
    "gen_skill_freeform:  80%|████████  | 4/5 [00:04<00:01,  1.50s/it]",
    " gen_skill_freeform:  90%|█████████ | 4/5 [00:04<00:01,  1.50s/it]",
    "100%|██████████| 5/5",
    "ratio 5%| not a bar",
    "x 5%| no|t 7%|██| 1/2 a later bar",
    "ERROR 2024-07-30 19:57:47,000 instructlab.sdg:9: ",
    "CRITICAL 2024-07-30 19:57:47,000 instructlab.sdg:9: it broke",
    "INFO 2024-07-30 19:57:44,987 instructlab.sdg:242: 3 samples were discarded",
    "WARNING 2024-07-30 19:57:45,001 instructlab.sdg:198: Running block: gen_knowledge",
    "Something failed with: an error",
]


@pytest.mark.parametrize("tail_lines", [0, 1, 3, 8])
def test_progress_feed_lines_equals_feed_line_by_line(tail_lines: int) -> None:
    """Chunks of random lines, fed on top of each other (the state carries over)."""
    chooser = random.Random(17 + tail_lines)
    for _ in range(300):
        one, many = Progress(tail_lines=tail_lines), Progress(tail_lines=tail_lines)
        for _chunk in range(chooser.randint(1, 4)):
            # fresh copies: the tail tells frames apart by identity, as lines read are
            lines = [(chooser.choice(POOL) + ".")[:-1] for _ in range(chooser.randint(0, 40))]
            if chooser.random() < 0.5:  # runs of redraws of one bar
                lines = [line for line in lines for _ in range(chooser.randint(1, 4))]
            for line in lines:
                one.feed(line)
            many.feed_lines(lines)
            assert one == many, lines
            assert _ends_with_bar(one) == _ends_with_bar(many), lines


def _ends_with_bar(progress: Progress) -> bool:
    """What decides whether the next redraw replaces the tail's last entry."""
    return bool(progress.tail) and progress.tail[-1] is progress._last_line


def test_each_token_start_holds_its_group_literal() -> None:
    """A group literal is searched first: a token start that does not contain it is never
    looked for (`github_pat_` under `gh` let fine-grained tokens through)."""
    for group, starts in redaction._TOKEN_STARTS:
        for start in starts:
            assert group in start, (group, start)
