"""Edit one threshold in a YAML config file in place: every byte outside the changed value stays as it was.

ruamel.yaml's composer gives the exact character span of each node, so an existing value is replaced by
splicing the text; a missing key or override is inserted as new lines (or flow items) in the style of its
parent. Comments, quoting, key order and blank lines are never re-emitted, so they cannot change.
`write_atomically` puts the result in place with a rename, so a watching server never reads half a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router.errors import ConfigError


@dataclass(frozen=True)
class Edit:
    """The edited text and a one-line description of the change (e.g. `routing.threshold: 0.5 -> 0.61`)."""

    text: str
    change: str


def format_threshold(value: float) -> str:
    """A threshold as YAML: at most 6 decimals, no trailing zeros (0.61, 0.612345, 1.0)."""
    text = f"{value:.6f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def set_threshold(text: str, threshold: float, *, tenant: str | None = None) -> Edit:
    """Set `routing.threshold`, or with `tenant` the threshold of the override `metadata: {tenant: T}`.

    That override is updated where it is; without one, it is appended to `routing.overrides`.
    Raises ConfigError when the file cannot take the change (not YAML, no top-level mapping, a tenant
    rule that forces a tier, a global threshold that `routing.target_large_fraction` would override).
    """
    value = format_threshold(threshold)
    root = _compose(text)
    routing = _get(root, "routing")
    if routing is None:
        rule = _new_rule_block(tenant, value, indent=4) if tenant else None
        section = f"  overrides:\n{rule}" if rule else f"  threshold: {value}\n"
        return Edit(_append_top(text, f"routing:\n{section}"), _describe(tenant, None, value))
    _expect_mapping(routing, "routing")
    if tenant is None:
        if _get(routing, "target_large_fraction") is not None and not _is_null(
            _get(routing, "target_large_fraction")
        ):
            raise ConfigError(
                "routing.target_large_fraction is set, so routing.threshold would be ignored; "
                "change or remove target_large_fraction instead"
            )
        return _set_key(text, routing, "threshold", value, "routing.threshold")
    return _set_tenant(text, routing, tenant, value)


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` (its symlink target, if any) with `text` via a temp file and a rename."""
    target = Path(os.path.realpath(path))
    mode = target.stat().st_mode & 0o7777 if target.exists() else 0o644
    handle, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _set_tenant(text: str, routing: Any, tenant: str, value: str) -> Edit:
    overrides = _get(routing, "overrides")
    if overrides is not None and _is_null(overrides):
        raise ConfigError("routing.overrides is null; write `overrides: []` or remove the key")
    if overrides is None:
        if routing.flow_style:
            rendered = f" [{_inline_rule(tenant, value)}]"
        else:
            rendered = "\n" + _new_rule_block(tenant, value, indent=_child_indent(routing) + 2).rstrip("\n")
        return Edit(_add_key(text, routing, "overrides", rendered), _describe(tenant, None, value))
    if type(overrides).__name__ != "SequenceNode":
        raise ConfigError("routing.overrides must be a list")
    for index, item in enumerate(overrides.value):
        metadata = _get(item, "metadata") if type(item).__name__ == "MappingNode" else None
        if metadata is None or type(metadata).__name__ != "MappingNode":
            continue
        pairs = {key.value: getattr(node, "value", None) for key, node in metadata.value}
        if pairs != {"tenant": tenant}:
            continue
        if _get(item, "tier") is not None:
            raise ConfigError(
                f"routing.overrides[{index}] forces a tier for tenant {tenant}; "
                "a threshold would never apply to it"
            )
        return _set_key(text, item, "threshold", value, f"routing.overrides[{index}].threshold")
    index = len(overrides.value)
    if overrides.flow_style:
        close = overrides.end_mark.index - 1  # the `]`
        separator = ", " if overrides.value else ""
        new_text = text[:close].rstrip() + separator + _inline_rule(tenant, value) + text[close:]
    else:
        dash = _dash_column(text, overrides.value[0])
        block = _new_rule_block(tenant, value, indent=dash)
        at = _line_end(text, _last_leaf_end(overrides))
        new_text = text[:at] + "\n" + block.rstrip("\n") + text[at:]
    return Edit(new_text, f"routing.overrides[{index}] (new): tenant={tenant} threshold={value}")


def _set_key(text: str, mapping: Any, key: str, value: str, name: str) -> Edit:
    node = _get(mapping, key)
    if node is None:
        return Edit(_add_key(text, mapping, key, f" {value}"), f"{name}: (unset) -> {value}")
    if type(node).__name__ != "ScalarNode":
        raise ConfigError(f"{name} is not a number")
    start, end = node.start_mark.index, node.end_mark.index
    return Edit(text[:start] + value + text[end:], f"{name}: {text[start:end] or '(empty)'} -> {value}")


def _add_key(text: str, mapping: Any, key: str, rendered_value: str) -> str:
    """Insert `key:<rendered_value>` as the mapping's last entry, in its style."""
    if mapping.flow_style:
        close = mapping.end_mark.index - 1  # the `}`
        separator = ", " if mapping.value else ""
        return text[:close].rstrip() + f"{separator}{key}:{rendered_value}" + text[close:]
    indent = _child_indent(mapping)
    at = _line_end(text, _last_leaf_end(mapping))
    return text[:at] + "\n" + " " * indent + f"{key}:{rendered_value}" + text[at:]


def _new_rule_block(tenant: str | None, value: str, *, indent: int) -> str:
    pad = " " * indent
    return f"{pad}- metadata: {{tenant: {json.dumps(tenant)}}}\n{pad}  threshold: {value}\n"


def _inline_rule(tenant: str, value: str) -> str:
    return f"{{metadata: {{tenant: {json.dumps(tenant)}}}, threshold: {value}}}"


def _append_top(text: str, section: str) -> str:
    if text and not text.endswith("\n"):
        text += "\n"
    return text + section


def _describe(tenant: str | None, old: str | None, value: str) -> str:
    if tenant:
        return f"routing.overrides[0] (new): tenant={tenant} threshold={value}"
    return f"routing.threshold: {old or '(unset)'} -> {value}"


def _compose(text: str) -> Any:
    from ruamel.yaml import YAML, YAMLError

    try:
        root = YAML().compose(text)
    except YAMLError as exc:
        raise ConfigError(f"not valid YAML: {' '.join(str(exc).split())}") from exc
    if root is None or type(root).__name__ != "MappingNode":
        raise ConfigError("expected a mapping at the top level")
    if root.flow_style:
        raise ConfigError("a config written as one flow mapping ({...}) cannot be edited in place")
    return root


def _get(mapping: Any, key: str) -> Any:
    for key_node, value_node in mapping.value:
        if getattr(key_node, "value", None) == key:
            return value_node
    return None


def _expect_mapping(node: Any, name: str) -> None:
    if type(node).__name__ != "MappingNode":
        raise ConfigError(f"{name} must be a mapping")


def _is_null(node: Any) -> bool:
    return type(node).__name__ == "ScalarNode" and node.tag.endswith(":null")


def _child_indent(mapping: Any) -> int:
    first_key = mapping.value[0][0] if mapping.value else None
    return int(first_key.start_mark.column) if first_key is not None else int(mapping.start_mark.column) + 2


def _dash_column(text: str, item: Any) -> int:
    line_start = text.rfind("\n", 0, item.start_mark.index) + 1
    dash = text.find("-", line_start, item.start_mark.index)
    return dash - line_start if dash >= 0 else max(int(item.start_mark.column) - 2, 0)


def _last_leaf_end(node: Any) -> int:
    """Where the last scalar (or flow collection) inside a block node ends."""
    kind = type(node).__name__
    if kind == "MappingNode" and not node.flow_style and node.value:
        return _last_leaf_end(node.value[-1][1])
    if kind == "SequenceNode" and not node.flow_style and node.value:
        return _last_leaf_end(node.value[-1])
    return int(node.end_mark.index)


def _line_end(text: str, index: int) -> int:
    """The end of the line holding `index` (before its newline), after any trailing comment."""
    if index > 0 and text[index - 1] == "\n":  # a block scalar ends after its newline
        return index - 1
    newline = text.find("\n", index)
    return len(text) if newline < 0 else newline
