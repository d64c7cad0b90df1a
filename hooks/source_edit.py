"""Splice helpers: ast positions to text offsets, line edits, and astor rendering of small nodes.

The pass parses to locate and splices to edit, so every character it does not own survives.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate

LINE_LENGTH = 100
# What may follow a node on its last line for the node to own that line.
STATEMENT_TAIL = r"[ \t]*(?:#[^\n]*)?"
ELEMENT_TAIL = r"[ \t]*,[ \t]*(?:#[^\n]*)?"


class Unsafe(Exception):
    """The file is laid out in a way the pass cannot edit without risk, so it is left as is."""


@dataclass(frozen=True)
class Edit:
    """Replace text[start:end] with `text` (an insertion when start == end)."""

    start: int
    end: int
    text: str


class Source:
    """Source text that turns ast positions (line, UTF-8 byte column) into string offsets."""

    def __init__(self, text: str) -> None:
        self.text = text
        # Split on "\n" only, as the parser does (str.splitlines also splits on \f, \x1c, ...).
        self._lines = re.split("(?<=\n)", text)
        self._starts = list(accumulate(map(len, self._lines), initial=0))

    def offset(self, lineno: int, col: int) -> int:
        """The string offset of an ast position, whose column counts UTF-8 bytes."""
        line = self._lines[lineno - 1]
        return self._starts[lineno - 1] + len(line.encode()[:col].decode())

    def span(self, node: ast.AST) -> tuple[int, int]:
        """The node's own text, as string offsets."""
        return (
            self.offset(node.lineno, node.col_offset),
            self.offset(node.end_lineno, node.end_col_offset),
        )

    def line_block(self, node: ast.AST, tail: str = STATEMENT_TAIL) -> tuple[int, int]:
        """The whole lines the node fills, newline included; Unsafe if it shares them."""
        start, end = self.span(node)
        line_start = self._starts[node.lineno - 1]
        rest = re.compile(tail + r"(?:\n|\Z)").match(self.text, end)
        if self.text[line_start:start].strip() or not rest:
            raise Unsafe(f"line {node.lineno} holds more than the one item the pass edits")
        return line_start, rest.end()

    def trailing_width(self, node: ast.AST) -> int:
        """How many characters follow the node on its last line (a comment, say)."""
        end = self.span(node)[1]
        line_end = self.text.find("\n", end)
        return (len(self.text) if line_end < 0 else line_end) - end

    def has_comment(self, node: ast.AST) -> bool:
        """Whether a comment sits inside the node's text (re-rendering the node would drop it)."""
        segment = self.text[slice(*self.span(node))]
        tokens = tokenize.generate_tokens(io.StringIO(segment).readline)
        return any(token.type == tokenize.COMMENT for token in tokens)

    def insert_line(
        self, anchor: ast.AST, code: str, *, after: bool, tail: str = STATEMENT_TAIL
    ) -> Edit:
        """Put `code` on a line of its own just before or after `anchor`, indented like it."""
        start, end = self.line_block(anchor, tail)
        line = f"{self.text[start : self.span(anchor)[0]]}{code}\n"
        if not after:
            return Edit(start, start, line)
        return Edit(end, end, line if self.text[end - 1 : end] == "\n" else f"\n{line}")

    def insert_in_order(
        self,
        items: Sequence[tuple[ast.AST, int | None]],
        rank: int,
        code: str,
        tail: str = STATEMENT_TAIL,
    ) -> Edit:
        """Insert `code` among ranked items: before the first ranked after it, else after the
        last ranked one (after the last item if none is ranked).

        Unranked items (the user's) neither move it earlier nor pull it after them, so the
        template's items keep canonical order and stay apart from lines the user appended.
        """
        if not items:
            raise Unsafe("there is no existing entry to insert the new one beside")
        ranked = [(node, other) for node, other in items if other is not None]
        later = next((node for node, other in ranked if other > rank), None)
        if later is not None:
            return self.insert_line(later, code, after=False, tail=tail)
        anchor = ranked[-1][0] if ranked else items[-1][0]
        return self.insert_line(anchor, code, after=True, tail=tail)


def apply_edits(text: str, edits: Iterable[Edit]) -> str:
    """Apply non-overlapping edits (same-offset insertions keep their order); refuse broken code."""
    parts, position = [], 0
    for edit in sorted(edits, key=lambda edit: (edit.start, edit.end)):
        if edit.start < position:
            raise Unsafe("two edits overlap (a bug in the pass)")
        parts += [text[position : edit.start], edit.text]
        position = edit.end
    result = "".join(parts) + text[position:]
    try:
        ast.parse(result)
    except SyntaxError as error:
        raise Unsafe(
            f"the edit would not parse at line {error.lineno} (a bug in the pass)"
        ) from None
    return result


def render(node: ast.AST) -> str:
    """One line of code for a small node the pass builds, with ruff-format's double quotes."""
    import astor  # Imported late so that main() can report a missing astor itself.

    return astor.to_source(node, pretty_string=_double_quoted).rstrip("\n")


def render_import(node: ast.ImportFrom, *, exploded: bool = False, trailing: int = 0) -> str:
    """A from-import on one line, or ruff-format's one-name-per-line form if it must wrap.

    `trailing` counts the characters that will follow it on its line, as ruff format does.
    """
    line = render(node)
    if not exploded and len(line) + trailing <= LINE_LENGTH:
        return line
    head = line.split(" import ", 1)[0]
    names = "".join(f"    {render(alias)},\n" for alias in node.names)
    return f"{head} import (\n{names})"


def _double_quoted(text: str, *_: object) -> str:
    """astor's `pretty_string` hook: a double-quoted literal unless that needs more escapes."""
    literal = repr(text)
    # repr chooses single quotes unless the text holds a single quote and no double quote.
    return f'"{literal[1:-1]}"' if literal[0] == "'" and '"' not in text else literal
