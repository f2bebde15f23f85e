"""render/data_key/value_text/data_hash: formats, key mapping, conflicts, size limit, determinism."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from appconfig_sync.render import (
    MAX_DATA_BYTES,
    RenderError,
    data_hash,
    data_key,
    data_size,
    render,
    value_text,
)
from appconfig_sync.spec import Format, Target

KEYS = Target(name="web-config")


def file_target(fmt: Format, separator: str | None = None, name: str = "settings") -> Target:
    return Target(name="web-config", format=fmt, file_name=name, separator=separator)


# --- keys -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "replacement", "expected"),
    [
        ("app:db:host", "_", "app_db_host"),
        ("app:db:host", "", "appdbhost"),
        ("app:db:host", "-", "app-db-host"),
        ("app:db:host", "..", "app..db..host"),
        ("Already.valid-key_1", "_", "Already.valid-key_1"),
        ("a/b c", "_", "a_b_c"),
        ("café", "_", "caf_"),
        ("😀", "x", "x"),
    ],
)
def test_data_key(key: str, replacement: str, expected: str) -> None:
    assert data_key(key, replacement) == expected


def test_keys_format_maps_keys_and_renders_json_values_compact_and_sorted() -> None:
    settings = {
        "message": "Hello World!",
        "app:db:host": "db.local",
        "app:limits": {"b": [1, 2], "a": {"y": True, "x": None}},
        "count": 3,
        "ratio": 0.5,
        "enabled": False,
        "nothing": None,
        "text": "ünïcode",
    }
    assert render(settings, KEYS) == {
        "message": "Hello World!",
        "app_db_host": "db.local",
        "app_limits": '{"a":{"x":null,"y":true},"b":[1,2]}',
        "count": "3",
        "ratio": "0.5",
        "enabled": "false",
        "nothing": "null",
        "text": "ünïcode",
    }


def test_keys_format_uses_the_targets_replacement() -> None:
    target = Target(name="c", key_replacement="-")
    assert render({"a:b": "1"}, target) == {"a-b": "1"}


def test_two_settings_mapping_to_one_key_are_an_error_naming_both() -> None:
    with pytest.raises(RenderError) as caught:
        render({"app:db": "1", "app_db": "2", "app/db": "3", "ok": "4"}, KEYS)
    assert caught.value.reason == "InvalidKeys"
    message = caught.value.message
    assert "'app/db' and 'app:db' both map to 'app_db'" in message
    assert "'app/db' and 'app_db' both map to 'app_db'" in message
    assert "keyReplacement" in message  # the fix


@pytest.mark.parametrize(("key", "replacement"), [(".", "_"), ("..", "_"), (":", ""), (":.", "."), ("a" * 254, "_")])
def test_invalid_data_keys(key: str, replacement: str) -> None:
    with pytest.raises(RenderError) as caught:
        render({key: "v"}, Target(name="c", key_replacement=replacement))
    assert caught.value.reason == "InvalidKeys"


def test_a_key_of_253_characters_is_fine() -> None:
    assert render({"a" * 253: "v"}, KEYS) == {"a" * 253: "v"}


def test_many_conflicts_are_counted_not_all_listed() -> None:
    settings = {f"k:{i}": "v" for i in range(15)} | {f"k_{i}": "v" for i in range(15)}
    with pytest.raises(RenderError) as caught:
        render(settings, KEYS)
    assert "and 5 more" in caught.value.message


def test_values_never_appear_in_errors() -> None:
    with pytest.raises(RenderError) as caught:
        render({"a:b": "hunter2", "a_b": "hunter3"}, KEYS)
    assert "hunter" not in str(caught.value)


# --- json / yaml ----------------------------------------------------------------------------------------------


def test_json_flat() -> None:
    out = render({"b": "2", "a:x": {"k": 1}}, file_target(Format.JSON, name="settings.json"))
    assert list(out) == ["settings.json"]
    assert out["settings.json"] == '{\n  "a:x": {\n    "k": 1\n  },\n  "b": "2"\n}\n'


def test_json_hierarchical() -> None:
    settings = {"app:db:host": "h", "app:db:port": 5432, "app:name": "web", "top": True}
    out = json.loads(render(settings, file_target(Format.JSON, ":"))["settings"])
    assert out == {"app": {"db": {"host": "h", "port": 5432}, "name": "web"}, "top": True}


@pytest.mark.parametrize("separator", [".", ",", ";", "-", "_", "__", "/", ":"])
def test_every_separator_nests(separator: str) -> None:
    settings = {separator.join(["a", "b", "c"]): "v"}
    assert json.loads(render(settings, file_target(Format.JSON, separator))["settings"]) == {"a": {"b": {"c": "v"}}}


@pytest.mark.parametrize("settings", [{"a:b": "1", "a:b:c": "2"}, {"a": {"x": 1}, "a:y": 2}, {"a:b:c": "1", "a:b": "2"}])
def test_a_key_that_is_value_and_parent_is_invalid(settings: dict[str, Any]) -> None:
    with pytest.raises(RenderError) as caught:
        render(settings, file_target(Format.JSON, ":"))
    assert caught.value.reason == "InvalidKeys"
    assert "both a value and a parent" in caught.value.message
    for key in settings:
        assert repr(key) in caught.value.message


def test_yaml_hierarchical_with_feature_flags() -> None:
    flags = [{"id": "Beta", "enabled": True, "conditions": {"client_filters": []}}, {"id": "Alpha", "enabled": False}]
    out = render({"app:color": "blue", "app:size": "10"}, file_target(Format.YAML, ":", "settings.yaml"), flags)
    doc = yaml.safe_load(out["settings.yaml"])
    assert doc == {"app": {"color": "blue", "size": "10"}, "feature_management": {"feature_flags": flags}}
    assert "size: '10'" in out["settings.yaml"]  # string values stay strings


def test_feature_flags_section_is_present_even_when_empty() -> None:
    out = render({}, file_target(Format.JSON), [])
    assert json.loads(out["settings"]) == {"feature_management": {"feature_flags": []}}


def test_a_setting_named_feature_management_collides_with_flags() -> None:
    with pytest.raises(RenderError) as caught:
        render({"feature_management:x": "1"}, file_target(Format.JSON, ":"), [])
    assert caught.value.reason == "InvalidKeys"
    assert "feature_management" in caught.value.message


def test_feature_flags_need_a_file_format() -> None:
    with pytest.raises(ValueError):
        render({}, KEYS, [])


# --- properties -----------------------------------------------------------------------------------------------


def test_properties_sorted_and_escaped_like_java() -> None:
    settings = {
        "z": "last",
        "app:db host": " leading space kept, inner too",
        "path": "C:\\temp\\x",
        "eq": "a=b#c!d",
        "lines": "one\ntwo\tthree\r\f",
        "uni": "é😀",
        "json": {"a": 1},
    }
    out = render(settings, file_target(Format.PROPERTIES, name="app.properties"))["app.properties"]
    assert out.splitlines() == [
        "app\\:db\\ host=\\ leading space kept, inner too",
        "eq=a\\=b\\#c\\!d",
        'json={"a"\\:1}',
        "lines=one\\ntwo\\tthree\\r\\f",
        "path=C\\:\\\\temp\\\\x",
        "uni=\\u00E9\\uD83D\\uDE00",
        "z=last",
    ]
    assert out.endswith("\n")


# --- size -----------------------------------------------------------------------------------------------------


def test_size_limit_is_checked_on_key_and_value_bytes() -> None:
    value = "x" * (MAX_DATA_BYTES - 1)
    assert data_size(render({"k": value}, KEYS)) == MAX_DATA_BYTES
    with pytest.raises(RenderError) as caught:
        render({"k": value + "x"}, KEYS)
    assert caught.value.reason == "TooLarge"
    assert f"{MAX_DATA_BYTES + 1} bytes" in caught.value.message and str(MAX_DATA_BYTES) in caught.value.message
    assert "web-config" in caught.value.message


def test_size_counts_utf8_bytes() -> None:
    with pytest.raises(RenderError, match="TooLarge"):
        render({"k": "é" * (MAX_DATA_BYTES // 2)}, KEYS)


def test_size_limit_applies_to_files() -> None:
    with pytest.raises(RenderError, match="TooLarge"):
        render({f"k{i}": "x" * 1000 for i in range(1100)}, file_target(Format.YAML))


# --- secrets, determinism, hash -------------------------------------------------------------------------------


def test_secret_data_renders_like_config_map_data() -> None:
    secret = Target(name="web-secrets")
    assert render({"db:password": "s3cret"}, secret) == {"db_password": "s3cret"}


@pytest.mark.parametrize(
    "target",
    [KEYS, file_target(Format.JSON), file_target(Format.JSON, ":"), file_target(Format.YAML, ":"), file_target(Format.PROPERTIES)],
)
def test_output_does_not_depend_on_input_order(target: Target) -> None:
    settings = {"b:y": "1", "a:x": {"q": 1, "p": [2, 1]}, "c": "3"}
    reordered = dict(reversed(list(settings.items())))
    assert render(settings, target) == render(reordered, target)
    assert data_hash(render(settings, target)) == data_hash(render(reordered, target))


def test_value_text() -> None:
    assert value_text("plain") == "plain"
    assert value_text({"b": 1, "a": "é"}) == '{"a":"é","b":1}'
    assert value_text([1, "2"]) == '[1,"2"]'


def test_data_hash() -> None:
    h = data_hash({"a": "1", "b": "2"})
    assert len(h) == 20 and all(c in "0123456789abcdef" for c in h)
    assert h == data_hash({"b": "2", "a": "1"})
    assert h != data_hash({"a": "1", "b": "3"})
    assert data_hash({"ab": "c"}) != data_hash({"a": "bc"})  # framing
    assert data_hash({"a": "b", "c": ""}) != data_hash({"a": "b\x00c"})
    assert data_hash({}) != data_hash({"": ""})
    assert data_hash({"k": "v"}) == "12ebec0bbf5bc52da0ac"  # sha256(b"1:k1:v"), stable across releases: a change would roll every workload
