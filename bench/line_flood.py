"""Print N bytes of `ilab data generate`-like output as fast as a pipe takes it.

Log lines in ilab's format and tqdm progress bars redrawn with `\\r`, in one prebuilt 1 MiB
block written over and over, so the generator costs almost nothing and the reader is measured.

Usage: python -m bench.line_flood BYTES
"""

from __future__ import annotations

import sys

BLOCK = 1 << 20


def block() -> bytes:
    """~1 MiB of realistic output ending at a line boundary."""
    lines: list[bytes] = []
    size = 0
    step = 0
    while size < BLOCK:
        step += 1
        if step % 3 == 0:
            pct = step % 101
            bar = "█" * (pct // 10) + " " * (10 - pct // 10)
            line = (
                f"gen_skill_freeform Prompt Generation: {pct:3d}%|{bar}| "
                f"{step % 900}/900 [00:{step % 60:02d}<01:{step % 60:02d},  1.50s/it]\r"
            )
        else:
            line = (
                f"INFO 2024-07-30 19:57:{step % 60:02d},{step % 1000:03d} "
                f"instructlab.sdg.pipeline:198: [flood {step}] Dataset({{features: "
                "['task_description', 'seed_question', 'seed_response'], num_rows: 5})\n"
            )
        data = line.encode()
        lines.append(data)
        size += len(data)
    return b"".join(lines)


def main() -> None:
    remaining = int(sys.argv[1])
    chunk = block()
    out = sys.stdout.buffer
    while remaining > 0:
        piece = chunk if remaining >= len(chunk) else chunk[:remaining]
        out.write(piece)
        remaining -= len(piece)
    out.flush()


if __name__ == "__main__":
    main()
