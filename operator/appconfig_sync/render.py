"""Loaded settings -> ConfigMap/Secret data (str -> str), and the hash that says whether it changed.

Pure functions: no I/O, no clock, deterministic output (sorted keys everywhere), so the same store content always
renders to the same bytes and the same hash, which is what keeps an operator restart from writing or rolling anything.

Key mapping for the keys format (data keys must match [-._a-zA-Z0-9]+, at most 253 characters): every character
outside that set is replaced by the target's key_replacement, one replacement per character (app:db:host ->
app_db_host; with an empty replacement, appdbhost). Nothing is truncated or merged: a key that maps to an empty
name, ".", "..", or more than 253 characters, and two settings that map to the same name, are InvalidKeys errors.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from appconfig_sync.spec import Format, Target

MAX_DATA_BYTES = 1024 * 1024  # the API server's limit for ConfigMap and Secret data: sum of key and value bytes
MAX_KEY_LENGTH = 253
FEATURE_MANAGEMENT = "feature_management"
HASH_LENGTH = 20

_INVALID_KEY_CHARS = re.compile(r"[^-._a-zA-Z0-9]")
_MAX_LISTED = 10  # conflicts named in one message; the rest are counted
_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\f": "\\f", "=": "\\=", ":": "\\:", "#": "\\#", "!": "\\!"}


class RenderError(Exception):
    """Settings that cannot become the target's data; reason is CamelCase for the Ready condition."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        self.message = message
        super().__init__(f"{reason}: {message}")


def render(
    settings: Mapping[str, Any],
    target: Target,
    feature_flags: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, str]:
    """Render settings (str values, or parsed JSON for JSON content types) into the target's data.

    feature_flags (the provider's feature_management.feature_flags list) is only for json and yaml targets;
    settings must not contain the provider's own feature_management entry.
    """
    if feature_flags is not None and target.format not in (Format.JSON, Format.YAML):
        raise ValueError(f"feature flags need a json or yaml target, not {target.format}; parse_spec refuses that")
    if target.format is Format.KEYS:
        data = _keys(settings, target.key_replacement)
    elif target.format is Format.PROPERTIES:
        data = {_file_name(target): _properties(settings)}
    else:
        data = {_file_name(target): _document(settings, target, feature_flags)}
    _check_size(data, target.name)
    return data


def data_key(key: str, replacement: str) -> str:
    """The keys format's mapping of a setting key to a data key (see the module docstring)."""
    return _INVALID_KEY_CHARS.sub(lambda _: replacement, key)


def value_text(value: Any) -> str:
    """A setting's value as data text: strings as they are, parsed JSON as compact key-sorted JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def data_hash(data: Mapping[str, str]) -> str:
    """A short stable hash of data; length-prefixed so that no two different mappings frame to the same bytes."""
    digest = hashlib.sha256()
    for key in sorted(data):
        for part in (key.encode(), data[key].encode()):
            digest.update(b"%d:" % len(part))
            digest.update(part)
    return digest.hexdigest()[:HASH_LENGTH]


def data_size(data: Mapping[str, str]) -> int:
    """Bytes as the API server counts them against MAX_DATA_BYTES."""
    return sum(len(key.encode()) + len(value.encode()) for key, value in data.items())


def _file_name(target: Target) -> str:
    if target.file_name is None:
        raise ValueError(f"format {target.format} needs a file name; parse_spec guarantees one")
    return target.file_name


def _keys(settings: Mapping[str, Any], replacement: str) -> dict[str, str]:
    data: dict[str, str] = {}
    source: dict[str, str] = {}
    problems: list[str] = []
    for key in sorted(settings):
        mapped = data_key(key, replacement)
        if mapped in ("", ".", ".."):
            problems.append(f"{key!r} maps to the invalid data key {mapped!r}")
        elif len(mapped) > MAX_KEY_LENGTH:
            problems.append(f"{key[:40]!r}... maps to a data key of {len(mapped)} characters (at most {MAX_KEY_LENGTH})")
        elif mapped in data:
            problems.append(f"{source[mapped]!r} and {key!r} both map to {mapped!r}")
        else:
            data[mapped] = value_text(settings[key])
            source[mapped] = key
    if problems:
        raise RenderError(
            "InvalidKeys",
            f"{_listing(problems)}; rename the settings, trim them with spec.trimKeyPrefixes, "
            "choose another spec.target keyReplacement, or use a json, yaml or properties file",
        )
    return data


def _document(settings: Mapping[str, Any], target: Target, feature_flags: Sequence[Mapping[str, Any]] | None) -> str:
    doc = _nest(settings, target.separator) if target.separator else dict(settings)
    if feature_flags is not None:
        if FEATURE_MANAGEMENT in doc:
            raise RenderError(
                "InvalidKeys",
                f"a setting named {FEATURE_MANAGEMENT!r} (or under it) collides with the feature flags section; "
                "rename it or trim it with spec.trimKeyPrefixes",
            )
        doc[FEATURE_MANAGEMENT] = {"feature_flags": list(feature_flags)}
    if target.format is Format.JSON:
        return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    return yaml.safe_dump(doc, sort_keys=True, allow_unicode=True, default_flow_style=False, width=1 << 20)


def _nest(settings: Mapping[str, Any], separator: str) -> dict[str, Any]:
    """a:b:c -> {"a": {"b": {"c": ...}}}; a key that is both a value and a parent is an InvalidKeys error."""
    root: dict[str, Any] = {}
    leaves: dict[tuple[str, ...], str] = {}  # path -> setting key, to name both sides of a conflict
    parents: dict[tuple[str, ...], str] = {}  # path -> first setting key that made it a parent
    problems: list[str] = []
    for key in sorted(settings):
        parts = tuple(key.split(separator))
        conflict = next((leaves[parts[:i]] for i in range(1, len(parts)) if parts[:i] in leaves), None)
        if conflict is None and parts in parents:
            conflict = parents[parts]
        if conflict is not None:
            problems.append(f"{conflict!r} and {key!r}")
            continue
        node = root
        for i, part in enumerate(parts[:-1]):
            parents.setdefault(parts[: i + 1], key)
            node = node.setdefault(part, {})
        node[parts[-1]] = settings[key]
        leaves[parts] = key
    if problems:
        raise RenderError(
            "InvalidKeys",
            f"with separator {separator!r} one key would be both a value and a parent of others: {_listing(problems)}; "
            "rename the settings, or remove spec.target separator to write a flat file",
        )
    return root


def _properties(settings: Mapping[str, Any]) -> str:
    lines = [f"{_escape(key, is_key=True)}={_escape(value_text(settings[key]), is_key=False)}" for key in sorted(settings)]
    return "".join(line + "\n" for line in lines)


def _escape(text: str, is_key: bool) -> str:
    """Java Properties.store escaping: readable by Properties.load, which reads ISO-8859-1, hence \\uXXXX."""
    out = []
    for i, char in enumerate(text):
        if char == " ":
            out.append("\\ " if is_key or i == 0 else " ")
        elif char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif " " < char <= "~":
            out.append(char)
        else:
            units = char.encode("utf-16-be")  # Java escapes UTF-16 code units: surrogate pairs beyond the BMP
            out.extend(f"\\u{int.from_bytes(units[j:j + 2], 'big'):04X}" for j in range(0, len(units), 2))
    return "".join(out)


def _check_size(data: Mapping[str, str], name: str) -> None:
    size = data_size(data)
    if size > MAX_DATA_BYTES:
        raise RenderError(
            "TooLarge",
            f"the data rendered for {name} is {size} bytes, over the API server's limit of {MAX_DATA_BYTES} bytes (1 MiB); "
            "narrow spec.selectors or split the settings over several AppConfigSyncs",
        )


def _listing(problems: Sequence[str]) -> str:
    shown = "; ".join(problems[:_MAX_LISTED])
    more = len(problems) - _MAX_LISTED
    return f"{shown}; and {more} more" if more > 0 else shown
