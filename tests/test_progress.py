import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instruct_lab_bot.core.progress import Progress, parse_bar, parse_log


def test_tqdm_bar() -> None:
    bar = parse_bar("Map (num_proc=8):  40%|████      | 2/5 [00:03<00:04,  1.50s/it]")
    assert bar is not None
    assert (bar.description, bar.percent, bar.done, bar.total, bar.eta) == (
        "Map (num_proc=8)",
        40,
        "2",
        "5",
        "00:04",
    )
    plain = parse_bar(" 100%|██████████| 10/10 [00:00<?, ?it/s]")
    assert plain is not None and plain.percent == 100 and plain.eta is None
    assert parse_bar("INFO 2024-07-30 19:57:44,987 x: 50% done") is None


def test_log_line() -> None:
    line = (
        "INFO 2024-07-30 19:57:44,987 instructlab.sdg.generate_data:242: "
        "Synthesizing new instructions."
    )
    parsed = parse_log(line)
    assert parsed is not None
    assert parsed.level == "INFO"
    assert parsed.message == "Synthesizing new instructions."
    assert parsed.logger == "instructlab.sdg.generate_data"


def test_tracker_keeps_a_bounded_tail_and_collapses_redraws() -> None:
    progress = Progress(tail_lines=10)
    for i in range(1, 6):
        progress.feed(f"Generating synthetic data: {i * 20}%|██| {i}/5 [00:0{i}<00:01, 1.0it/s]")
    assert progress.percent == 100
    assert progress.stage == "Generating synthetic data"
    assert len(progress.tail) == 1  # five redraws of one bar are one line on screen
    for i in range(100):
        progress.feed(f"line {i}")
    assert len(progress.tail) == 10 and progress.tail[-1] == "line 99"
    progress.feed(
        "ERROR 2024-07-30 19:57:44,987 instructlab: Generating dataset failed with "
        "the following error: teacher model unreachable"
    )
    assert progress.error == "teacher model unreachable"
    progress.feed(
        "INFO 2024-07-30 19:57:44,987 instructlab.sdg:466: 60 instructions generated, "
        "2 discarded due to format (see out/discarded_m.log), 1 discarded due to rouge score"
    )
    assert progress.discarded == 3
    overshoot = parse_bar(
        "gen_skill_freeform Prompt Generation: 3000%|██████████| 150/5 [00:01<00:00]"
    )
    assert overshoot is not None and overshoot.percent == 100


def test_long_lines_and_plain_failure_lines() -> None:
    progress = Progress()
    progress.feed("x" * 100_000)  # no bar: rejected without a regex scan
    assert progress.stage == "Starting" and progress.lines_seen == 1
    progress.feed("y" * 5_000 + " 50%|█████     | 1/2 [00:01<00:01]")
    assert progress.counter == "1/2" and len(progress.stage) <= 200
    progress.feed("Generating dataset failed with the following error: server unreachable")
    assert progress.error == "server unreachable"


# A line of each shape that made a regex search over the line quadratic (or crash `int()`).
PATHOLOGICAL: dict[str, Callable[[int], str]] = {
    "digit run": lambda n: "1" * n + "%|",
    "digits before a bar": lambda n: "7" * n + "%|█| 1/2",
    "marks": lambda n: "1%|" * (n // 3),
    "bars without counter": lambda n: "5%|x|" * (n // 5),
    "long counter": lambda n: "5%|x| " + "2" * n + "/3",
    "discarded": lambda n: "9" * n + " discarded",
}


def _best_time(line: str) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.process_time()  # this process's CPU time: other processes don't count
        Progress().feed(line)
        best = min(best, time.process_time() - started)
    return best


@pytest.mark.parametrize("shape", sorted(PATHOLOGICAL))
def test_long_lines_parse_in_linear_time(shape: str) -> None:
    """Four times the line, at most about four times the work (quadratic would be sixteen)."""
    make = PATHOLOGICAL[shape]
    small, large = make(8 * 1024), make(32 * 1024)
    Progress().feed(large)  # never raises, whatever the shape
    ratio = _best_time(large) / max(_best_time(small), 1e-6)
    assert ratio < 10, f"{shape}: 4x longer line took {ratio:.1f}x as long"


def test_a_huge_percentage_is_capped_not_parsed() -> None:
    bar = parse_bar("9" * 5000 + "%|██| 3/3")
    assert bar is not None and bar.percent == 100 and bar.description == ""


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789%|/.:[]<>? \tkMGa█Ü")), max_size=300))
def test_parse_bar_never_raises_and_returns_sane_values(line: str) -> None:
    bar = parse_bar(line)
    if bar is not None:
        assert 0 <= bar.percent <= 100
        assert len(bar.description) <= 200
        assert bar.done and bar.total and "%|" in line
    progress = Progress(tail_lines=3)
    progress.feed(line)
    assert len(progress.tail) <= 3 and (progress.percent is None or 0 <= progress.percent <= 100)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=200), max_size=20))
def test_progress_accepts_any_text(lines: list[str]) -> None:
    progress = Progress(tail_lines=5)
    for line in lines:
        progress.feed(line)
    assert progress.lines_seen == len(lines) and len(progress.tail) <= 5
    assert len(progress.error) <= 2000 and len(progress.last_message) <= 500


def test_the_datasets_librarys_housekeeping_bars_are_never_the_stage() -> None:
    """Fed the real 0.26.1 console of a skill + knowledge run, the stage is the last SDG
    block ilab ran, not "Creating json from Arrow format", "Map" or "Filter"."""
    recorded = Path(__file__).parent / "fixtures" / "ilab_layout" / "0.26.1.console.txt"
    progress = Progress()
    stages: list[str] = []
    for line in recorded.read_text().splitlines():
        progress.feed(line)
        stages.append(progress.stage)
    assert "Creating json from Arrow format" in "\n".join(progress.tail)  # still in the tail
    assert {"Map", "Filter", "Creating json from Arrow format"}.isdisjoint(stages)
    assert any(stage.endswith("Prompt Generation") for stage in stages)


def test_sdgs_running_block_log_line_is_the_stage() -> None:
    """0.18 draws no bar of its own while generating: SDG's "Running block" line says what
    runs (CLI.md's 0.18.4 console)."""
    progress = Progress()
    progress.feed(
        "INFO 2026-12-06 10:00:00,000 instructlab.sdg.pipeline:197: Running block: "
        "gen_skill_freeform"
    )
    progress.feed("Map (num_proc=8): 100%|██████████| 5/5 [00:00<00:00, 35.75 examples/s]")
    assert progress.stage == "Running block: gen_skill_freeform"
