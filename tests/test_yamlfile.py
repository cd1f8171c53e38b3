"""YAML loading: positions, YAML 1.2 scalars, timestamps as text, duplicates, limits."""

from __future__ import annotations

import pytest

from talon.yamlfile import YamlError, load_text


def test_positions_of_keys_items_and_values() -> None:
    loaded = load_text("a: 1\nb:\n  - x\n  - {c: 2}\n")
    assert loaded.key_pos[("a",)] == (1, 1)
    assert loaded.key_pos[("b", 1)] == (4, 5)
    assert loaded.key_pos[("b", 1, "c")] == (4, 6)
    assert loaded.value_pos[("a",)] == (1, 4)
    assert loaded.position(("b", 1, "missing")) == (4, 5)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("v: no", "no"),  # YAML 1.1 would say False
        ("v: on", "on"),
        ("v: 09:00", "09:00"),  # YAML 1.1 would say 540
        ("v: 2026-11-27", "2026-11-27"),  # kept as written, not a date
        ("v: 2026-11-27T06:30:00+01:00", "2026-11-27T06:30:00+01:00"),
        ("v: 010", 10),
        ("v: true", True),
        ("v: 1.5", 1.5),
        ("v: ~", None),
    ],
)
def test_scalars(text: str, value: object) -> None:
    assert load_text(text).data["v"] == value


def test_duplicate_keys_are_noted_with_both_places_and_the_first_value_kept() -> None:
    loaded = load_text("a: 1\nb: 2\na: 3\nc:\n  x: 1\n  x: 2\n")
    assert loaded.duplicates == (("a", (3, 1), (1, 1)), ("x", (6, 3), (5, 3)))
    assert loaded.data == {"a": 1, "b": 2, "c": {"x": 1}}


def test_syntax_error_is_located() -> None:
    with pytest.raises(YamlError) as info:
        load_text("a:\n  - x\n - y\n")
    assert info.value.line == 3
    assert info.value.message.startswith("invalid YAML:")


def test_alias_expansion_is_bounded() -> None:
    text = "a: &a [" + ", ".join(["x"] * 50) + "]\n"
    prev = "a"
    for name in "bcdef":
        text += f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 50) + "]\n"
        prev = name
    with pytest.raises(YamlError, match="too many nodes"):
        load_text(text)


def test_empty_document_is_none() -> None:
    assert load_text("# only a comment\n").data is None


def test_keys_read_as_other_types_keep_their_spelling() -> None:
    assert load_text("true: 1\nnull: 2\nfalse: 3\n7: 4\n").data == {
        "true": 1,
        "null": 2,
        "false": 3,
        "7": 4,
    }
