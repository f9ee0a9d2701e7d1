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
