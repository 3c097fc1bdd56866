"""YAML loading that remembers the line of every key and list item.

PyYAML's composer gives every node a start mark; we walk the node tree ourselves so that each
path ``("search", "space", "lr", "low")`` maps to the 1-based line of its key (or list item).
Two deliberate departures from plain ``yaml.safe_load``:

* duplicate keys in a mapping are an error (PyYAML silently keeps the last one);
* ``1e-3`` (an exponent without a dot, YAML 1.2 style) is a float, not the string ``"1e-3"``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from orchestrator.config_errors import ConfigError, Path_, Problem

# YAML 1.1's float regexp needs a dot; accept 1e-3, 5E+2, -2e4 as floats like YAML 1.2 does.
_FLOAT_RE = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.VERBOSE,
)


class _Loader(yaml.SafeLoader):
    pass


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:float"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE, list("-+0123456789."))


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _walk(
    loader: _Loader, node: yaml.Node, path: Path_, lines: dict[Path_, int], problems: list[Problem]
) -> Any:
    if isinstance(node, yaml.MappingNode):
        # Duplicates among the keys written here are errors; keys merged in with `<<: *anchor`
        # may be overridden (that is what merge keys are for).
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                continue  # reported below
            if key in first_line:
                problems.append(
                    Problem(
                        _dotted(path + (str(key),)),
                        f"duplicate key (first given on line {first_line[key]})",
                        _line(key_node),
                    )
                )
            else:
                first_line[key] = _line(key_node)
        loader.flatten_mapping(node)  # resolves merge keys; explicit keys come last
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                problems.append(
                    Problem(
                        _dotted(path + (str(key),)),
                        "keys must be strings",
                        _line(key_node),
                        key,
                    )
                )
                key = str(key)
            lines[path + (key,)] = _line(key_node)
            out[key] = _walk(loader, value_node, path + (key,), lines, problems)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            lines[path + (i,)] = _line(item)
            items.append(_walk(loader, item, path + (i,), lines, problems))
        return items
    return loader.construct_object(node, deep=True)


def _dotted(path: Path_) -> str:
    from orchestrator.config_errors import dotted

    return dotted(path)


def parse_yaml_with_lines(text: str, filename: str) -> tuple[Any, dict[Path_, int]]:
    """Parse YAML text; return ``(data, lines)`` where ``lines[path]`` is a 1-based line.

    Raises:
        ConfigError: empty document, syntax error (with its line), duplicate or non-string keys,
            several documents in one file, or a top level that is not a mapping.
    """
    if not text.strip() or all(
        not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()
    ):
        raise ConfigError(filename, [Problem("", "the file is empty (no config in it)", 1)])
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else 1
        if e.context == "expected a single document in the stream":
            msg = "a config file holds one YAML document, found a second one (remove '---')"
        else:
            msg = "YAML syntax error: " + " ".join(s for s in (e.context, e.problem) if s)
        raise ConfigError(filename, [Problem("", msg, line)]) from None
    except yaml.YAMLError as e:
        raise ConfigError(filename, [Problem("", f"YAML error: {e}", 1)]) from None
    finally:
        loader.dispose()
    if root is None:
        raise ConfigError(filename, [Problem("", "the file is empty (no config in it)", 1)])
    lines: dict[Path_, int] = {(): _line(root)}
    problems: list[Problem] = []
    loader = _Loader("")
    try:
        data = _walk(loader, root, (), lines, problems)
    except yaml.constructor.ConstructorError as e:
        mark = e.problem_mark
        raise ConfigError(
            filename, [Problem("", f"YAML error: {e.problem}", mark.line + 1 if mark else 1)]
        ) from None
    finally:
        loader.dispose()
    if problems:
        raise ConfigError(filename, problems)
    if not isinstance(data, dict):
        raise ConfigError(
            filename,
            [
                Problem(
                    "",
                    f"the config must be a mapping of keys (name: ..., trainable: ...), "
                    f"got a {type(data).__name__}",
                    _line(root),
                    data,
                )
            ],
        )
    return data, lines


def load_yaml_with_lines(path: Path) -> tuple[dict[str, Any], dict[Path_, int]]:
    """Read ``path`` and parse it (see ``parse_yaml_with_lines``).

    Raises:
        ConfigError: missing or unreadable file, or any problem of ``parse_yaml_with_lines``.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), [Problem("", "no such file", None)]) from None
    except IsADirectoryError:
        raise ConfigError(
            str(path), [Problem("", "is a directory, not a config file", None)]
        ) from None
    except UnicodeDecodeError as e:
        raise ConfigError(str(path), [Problem("", f"not UTF-8 text ({e.reason})", None)]) from None
    except OSError as e:
        raise ConfigError(str(path), [Problem("", f"cannot read: {e.strerror}", None)]) from None
    return parse_yaml_with_lines(text, str(path))
