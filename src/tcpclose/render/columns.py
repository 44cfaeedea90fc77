"""Blocks of terminal text side by side when they fit, one above the other when they do not.

The width to fit is the terminal's (a tty) or `$COLUMNS` (set by the user or a test); a file
or a pipe without `$COLUMNS` has no width, and gets the blocks side by side. No value is ever
cut: a line too long for its place is word-wrapped, and a word too long for a line is folded
onto the next one (rich's `overflow="fold"`), never truncated or ellipsized.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.text import Text

#: columns between two blocks set side by side
GAP = 4
#: a block's width side by side when the output has no width (a file, a pipe)
UNBOUNDED_BLOCK_WIDTH = 86


@dataclass(frozen=True)
class Block:
    """One block of text, in pieces: a piece with `wrap` False (a diagram) is never wrapped
    side by side, so its longest line is the block's minimum width; a piece with `wrap` True
    (prose) wraps to the width left."""

    pieces: Sequence[tuple[Text, bool]]

    def min_width(self) -> int:
        return max(
            (line.cell_len for text, wrap in self.pieces if not wrap for line in text.split("\n")),
            default=0,
        )


def output_width() -> int | None:
    """The columns the output must fit: on a tty the terminal's width (`$COLUMNS` first, then
    the TIOCGWINSZ ioctl, as `shutil.get_terminal_size` does); else `$COLUMNS` when it is a
    positive number; else None (a file or a pipe: no limit)."""
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    return None


def side_by_side_fits(blocks: Sequence[Block], width: int | None, gap: int = GAP) -> bool:
    """Whether the blocks fit side by side in `width` columns, in equal shares."""
    if width is None or not blocks:
        return True
    share = (width - gap * (len(blocks) - 1)) // len(blocks)
    return all(block.min_width() <= share for block in blocks)


def _lines(text: Text, console: Console, width: int, blank_end: bool = False) -> list[Text]:
    """`text` cut into lines of at most `width` cells, at word boundaries (folding a word
    longer than a line), without losing a character; no trailing blanks. A final newline
    makes a blank last line only with `blank_end`."""
    out: list[Text] = []
    for line in text.split("\n", allow_blank=blank_end):
        if line.cell_len <= width:
            out.append(line)
        else:
            out.extend(line.wrap(console, width, overflow="fold"))
    for line in out:
        line.rstrip()
    return out


def _block_lines(block: Block, console: Console, width: int) -> list[Text]:
    return [line for text, _ in block.pieces for line in _lines(text, console, width)]


def print_wrapped(console: Console, text: Text, width: int | None) -> None:
    """Print `text` with no line longer than `width` (as it is when there is no width), as
    `console.print(text)` would: a final newline prints a blank line."""
    for line in _lines(text, console, width or sys.maxsize, blank_end=True):
        console.print(line, soft_wrap=True)


def print_blocks(
    console: Console, blocks: Sequence[Block], width: int | None, gap: int = GAP
) -> None:
    """Print the blocks side by side when they fit in `width`, else one above the other with
    a blank line between them; no printed line is longer than `width`, and no trailing blanks."""
    if not side_by_side_fits(blocks, width, gap):
        for i, block in enumerate(blocks):
            if i:
                console.print()
            for line in _block_lines(block, console, width or 1):
                console.print(line, soft_wrap=True)
        return
    share = (
        max(UNBOUNDED_BLOCK_WIDTH, *(b.min_width() for b in blocks))
        if width is None
        else (width - gap * (len(blocks) - 1)) // len(blocks)
    )
    columns = [_block_lines(block, console, share) for block in blocks]
    for row in range(max(len(c) for c in columns)):
        out = Text()
        for i, column in enumerate(columns):
            cell = column[row].copy() if row < len(column) else Text()
            if i < len(columns) - 1:
                cell.pad_right(share - cell.cell_len + gap)
            out.append_text(cell)
        out.rstrip()
        console.print(out, soft_wrap=True)
