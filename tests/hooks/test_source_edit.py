"""source_edit: offsets, splicing and rendering, the parts every transform relies on."""

from __future__ import annotations

import ast

import pytest

from hooks.source_edit import Edit, Source, Unsafe, apply_edits, render, render_import


def test_offset_counts_characters_where_ast_counts_utf8_bytes() -> None:
    text = 'route = "/café" + suffix\n'
    name = ast.parse(text).body[0].value.right
    assert name.col_offset == 19
    assert text[slice(*Source(text).span(name))] == "suffix"


def test_only_newlines_split_lines_as_the_parser_does() -> None:
    text = "a = 1  # \x0c form feed\nb = 2\n"
    second = ast.parse(text).body[1]
    assert Source(text).line_block(second) == (text.index("b"), len(text))


def test_insertions_at_one_offset_keep_their_order() -> None:
    edits = [Edit(2, 2, "b = 2\n"), Edit(0, 2, ""), Edit(2, 2, "c = 3\n")]
    assert apply_edits("x\na = 1\n", edits) == "b = 2\nc = 3\na = 1\n"


@pytest.mark.parametrize(
    "edits",
    [[Edit(0, 3, ""), Edit(2, 4, "")], [Edit(0, 0, "(")]],
    ids=["overlap", "result does not parse"],
)
def test_apply_edits_refuses_a_broken_result(edits: list[Edit]) -> None:
    with pytest.raises(Unsafe):
        apply_edits("a = 1\n", edits)


def test_insert_after_a_last_line_without_newline() -> None:
    text = "if x:\n    f()"
    call = ast.parse(text).body[0].body[0]
    assert (
        apply_edits(text, [Source(text).insert_line(call, "g()", after=True)])
        == text + "\n    g()\n"
    )


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("/docs/", '"/docs/"'),
        ("it's", '"it\'s"'),
        ('say "hi"', "'say \"hi\"'"),
        ("a'\"", "'a\\'\"'"),
    ],
)
def test_render_prefers_double_quotes(value: str, literal: str) -> None:
    assert render(ast.Constant(value)) == literal


def test_render_import_wraps_past_the_line_length() -> None:
    names = [*(f"module_{index:02}" for index in range(6)), "a_seventeen_chars"]
    node = ast.ImportFrom(module="api", names=[ast.alias(name) for name in names], level=1)
    assert render_import(node) == f"from .api import {', '.join(names)}"
    assert len(render_import(node)) == 100
    wrapped = "from .api import (\n" + "".join(f"    {name},\n" for name in names) + ")"
    assert render_import(node, trailing=1) == wrapped
    assert render_import(node, exploded=True) == wrapped
