"""`ilab.log` is capped: the head and the tail are kept, and the file says what was cut."""

from __future__ import annotations

from pathlib import Path

from instruct_lab_bot.services.worker.log_file import CappedLog, cut_notice


def write(path: Path, limit: int, count: int) -> list[str]:
    lines = [f"line {i:06d} " + "x" * 40 for i in range(count)]
    with CappedLog(path, limit) as log:
        for line in lines:
            log.write_line(line)
    return lines


def test_a_small_log_is_written_as_is(tmp_path: Path) -> None:
    path = tmp_path / "ilab.log"
    lines = write(path, 64 * 1024, 100)
    assert path.read_text().splitlines() == lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ilab.log"]


def test_a_flood_keeps_head_and_tail_within_the_cap(tmp_path: Path) -> None:
    path = tmp_path / "ilab.log"
    limit = 64 * 1024
    lines = write(path, limit, 20_000)  # about 1 MB
    kept = path.read_text().splitlines()
    notice = next(i for i, line in enumerate(kept) if line.startswith("[instruct-lab-bot:"))
    head, tail = kept[:notice], kept[notice + 1 :]
    assert head == lines[: len(head)] and tail == lines[len(lines) - len(tail) :]
    cut = len(lines) - len(head) - len(tail)
    cut_bytes = sum(len(line) + 1 for line in lines[len(head) : len(lines) - len(tail)])
    assert kept[notice] == cut_notice(cut, cut_bytes, limit)
    assert limit // 2 - 100 < sum(len(line) + 1 for line in head) <= limit // 2
    assert limit // 4 <= sum(len(line) + 1 for line in tail) <= limit // 2 + 100
    assert path.stat().st_size <= limit + len(kept[notice]) + 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ilab.log"]  # no segment left


def test_a_line_longer_than_the_head_goes_to_the_tail(tmp_path: Path) -> None:
    path = tmp_path / "ilab.log"
    with CappedLog(path, 64 * 1024) as log:
        log.write_line("start")
        log.write_line("y" * 40_000)
        log.write_line("end")
    assert path.read_text().splitlines() == ["start", "y" * 40_000, "end"]
