"""The one YAML loader of the toolkit: safe, and a key given twice is an error.

Why: PyYAML keeps the last of two equal keys without a word, so a spec with
`versions: 2` and, further down, `versions: 3` built 3 versions. Every YAML file the
toolkit reads (study specs, training configs, exclusion rules, the spec copied into a
built study) goes through `load_yaml`, which refuses that with one line naming the key
and both lines. Keys merged in with `<<` may be overridden (that is what a merge is for).
"""
from __future__ import annotations

from typing import Any

import yaml

from common.errors import ToolkitError


class DuplicateKeyError(ToolkitError):
    """A mapping in a YAML file gives the same key twice."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader whose mappings refuse a repeated key."""

    source = "YAML"

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:          # an unhashable key: SafeLoader refuses it itself
                    continue
                line = key_node.start_mark.line + 1
                if first is not None:
                    raise DuplicateKeyError(f"{self.source}: key {key!r} appears twice (line {first} and "
                                            f"line {line}); keep one")
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str, source: str = "YAML") -> Any:
    """`yaml.safe_load(text)`, refusing repeated keys (DuplicateKeyError naming `source`,
    the key and both 1-based lines). Syntax errors are yaml.YAMLError, as before."""
    loader = _UniqueKeyLoader(text)
    loader.source = source
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
