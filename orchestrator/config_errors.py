"""Config problems: what went wrong, where (dotted path + YAML line) and with which value.

``sweepcast validate`` prints each ``Problem`` as::

    FILE:LINE: dotted.field.path: message (got VALUE)

``problems_from`` turns a pydantic ``ValidationError`` into such problems, with messages that
say what is allowed (unknown keys list the allowed ones; an option given to a scheduler that does
not take it names the scheduler).
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import types
import typing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Union

if TYPE_CHECKING:  # pragma: no cover
    from pydantic import BaseModel, ValidationError

    from orchestrator.config import SweepConfig

Path_ = tuple[Any, ...]  # ("search", "space", "lr", "low"); list items are ints

_NO_VALUE = object()


@dataclass(frozen=True)
class Problem:
    """One problem with a config.

    Attributes:
        path: dotted field path (``"search.space.lr.low"``); ``""`` for the whole file.
        message: what is wrong and what is allowed.
        line: 1-based YAML line, or None when unknown (data not from a file, missing file).
        value: the offending value, or ``Problem.NO_VALUE`` when there is none to show.
    """

    path: str
    message: str
    line: int | None = None
    value: Any = field(default=_NO_VALUE)

    NO_VALUE: typing.ClassVar[object] = _NO_VALUE

    def format(self, filename: str) -> str:
        """``FILE:LINE: path: message (got VALUE)`` (parts that are unknown are left out)."""
        head = filename if self.line is None else f"{filename}:{self.line}"
        body = f"{self.path}: {self.message}" if self.path else self.message
        if self.value is not _NO_VALUE and "got " not in self.message:
            body += f" (got {_show(self.value)})"
        return f"{head}: {body}"


class ConfigError(ValueError):
    """A config file that cannot be used. ``problems`` lists every problem found."""

    def __init__(self, filename: str, problems: list[Problem]):
        self.filename = filename
        self.problems = list(problems)
        super().__init__("\n".join(p.format(filename) for p in self.problems))

    def lines(self) -> list[str]:
        """The formatted problems, one per line, in file order."""
        return [p.format(self.filename) for p in self.problems]


def dotted(path: Path_) -> str:
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out


def _show(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 80 else s[:77] + "..."


# --------------------------------------------------------------------- pydantic errors


def _unwrap(tp: Any, value: Any) -> Any:
    """Strip Annotated/Optional and pick the union member a mapping value selects."""
    from pydantic import BaseModel

    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
            continue
        if origin in (Union, types.UnionType):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            models = [m for m in members if inspect.isclass(m) and issubclass(m, BaseModel)]
            if len(members) == 1:
                tp = members[0]
                continue
            if len(models) == 1:
                return models[0]
            if isinstance(value, dict):
                for m in models:
                    if _tag_of(m, value) is not None:
                        return m
            return None
        return tp


# Discriminator fields of the config's tagged unions (pruning.scheduler, search.space.*.type).
DISCRIMINATORS = ("scheduler", "type")


def _tag_of(model: Any, value: dict[str, Any]) -> tuple[str, Any] | None:
    """``(field, tag)`` when ``value`` selects ``model`` through its discriminator field."""
    for name, f in model.model_fields.items():
        if (
            name in DISCRIMINATORS
            and typing.get_origin(f.annotation) is Literal
            and value.get(name) in typing.get_args(f.annotation)
        ):
            return name, value[name]
    return None


def _model_at(root: Any, data: Any, path: Path_) -> Any:
    """The pydantic model class that validates the mapping at ``path`` (None if unknown)."""
    from pydantic import BaseModel

    tp: Any = root
    cur = data
    for key in path:
        tp = _unwrap(tp, cur)
        if inspect.isclass(tp) and issubclass(tp, BaseModel):
            f = tp.model_fields.get(key)
            if f is None:
                return None
            tp = f.annotation
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        elif typing.get_origin(tp) is list:
            tp = typing.get_args(tp)[0]
        else:
            return None
        try:
            cur = cur[key]
        except (KeyError, IndexError, TypeError):
            cur = None
    tp = _unwrap(tp, cur)
    return tp if inspect.isclass(tp) and issubclass(tp, BaseModel) else None


def _data_path(data: Any, loc: tuple[Any, ...], missing: bool) -> tuple[Path_, bool]:
    """Map a pydantic ``loc`` onto the data: drop union tags / member names that are not keys.

    Returns ``(path, found)`` where ``found`` says the last element exists in the data.
    """
    path: list[Any] = []
    cur = data
    found = True
    for i, el in enumerate(loc):
        if (
            isinstance(cur, dict)
            and el in cur
            or isinstance(cur, list)
            and isinstance(el, int)
            and 0 <= el < len(cur)
        ):
            path.append(el)
            cur = cur[el]
        elif missing and i == len(loc) - 1 and isinstance(el, str) and isinstance(cur, dict):
            # a missing field: keep it in the path, it is the field the user must add
            path.append(el)
            found = False
        else:
            continue  # a union tag ('uniform', 'asha') or member name ('int', 'str')
    return tuple(path), found


def _line_for(lines: dict[Path_, int], path: Path_) -> int | None:
    p = path
    while True:
        if p in lines:
            return lines[p]
        if not p:
            return None
        p = p[:-1]


_TYPE_WORDS = {
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "none_required": "null",
}


def _message(err: dict[str, Any], root: Any, data: Any, path: Path_) -> str:
    t = err["type"]
    ctx = err.get("ctx") or {}
    if t == "missing":
        return "is required"
    if t == "extra_forbidden":
        model = _model_at(root, data, path[:-1])
        parent = _get(data, path[:-1])
        allowed = ", ".join(model.model_fields) if model is not None else ""
        tag = _tag_of(model, parent) if model is not None and isinstance(parent, dict) else None
        if tag is not None:
            allowed_opts = ", ".join(k for k in model.model_fields if k != tag[0]) or "none"
            return (
                f"{tag[0]} {tag[1]!r} does not accept option {path[-1]!r} "
                f"(it accepts: {allowed_opts})"
            )
        return f"unknown key {path[-1]!r}" + (f" (allowed: {allowed})" if allowed else "")
    if t == "union_tag_invalid":
        disc = str(ctx.get("discriminator", "")).strip("'")
        expected = str(ctx.get("expected_tags", "")).replace("'", "")
        what = {"scheduler": "scheduler", "type": "search-space type"}.get(disc, disc)
        return f"unknown {what} {ctx.get('tag')!r}; expected one of: {expected}"
    if t == "union_tag_not_found":
        disc = str(ctx.get("discriminator", "")).strip("'")
        return "is required" + _known_tags(disc)
    if t in _TYPE_WORDS:
        return f"must be {_TYPE_WORDS[t]}"
    msg = err["msg"]
    if t == "value_error":
        msg = msg.removeprefix("Value error, ")
        if path and isinstance(path[-1], str) and msg.startswith(f"{path[-1]} must "):
            msg = msg[len(path[-1]) + 1 :]  # the path already names the field
        return msg
    if t == "literal_error":
        return "must be " + str(ctx.get("expected", msg))
    return (
        msg.replace("Input should be", "must be")
        .replace("Dictionary should", "must")
        .replace("List should", "must")
    )


def _known_tags(disc: str) -> str:
    if disc == "scheduler":
        from orchestrator.config_pruning import SCHEDULERS

        return f" (one of: {', '.join(SCHEDULERS)})"
    if disc == "type":
        from orchestrator.config_space import SPACE_TYPES

        return f" (one of: {', '.join(SPACE_TYPES)})"
    return ""


def _get(data: Any, path: Path_) -> Any:
    cur = data
    for p in path:
        try:
            cur = cur[p]
        except (KeyError, IndexError, TypeError):
            return None
    return cur


def problems_from(
    exc: ValidationError, data: Any, lines: dict[Path_, int], root: type[BaseModel]
) -> list[Problem]:
    """Translate a pydantic ``ValidationError`` into ``Problem``s sorted by line.

    Args:
        exc: the error from ``root.model_validate(data)``.
        data: the raw (YAML-loaded) data that was validated.
        lines: path -> 1-based line, from ``config_yaml``; may be empty.
        root: the model class validated.
    """
    by_path: dict[Path_, list[tuple[dict[str, Any], bool]]] = {}
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        path, found = _data_path(data, loc, err["type"] == "missing")
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            disc = str((err.get("ctx") or {}).get("discriminator", "")).strip("'")
            path = path + (disc,) if disc else path
            found = err["type"] == "union_tag_invalid"
        by_path.setdefault(path, []).append((err, found))
    problems: list[Problem] = []
    for path, errs in by_path.items():
        err, found = errs[0]
        if len(errs) > 1 and all(e["type"] in _TYPE_WORDS for e, _ in errs):
            words = sorted({_TYPE_WORDS[e["type"]] for e, _ in errs})
            msg = "must be one of: " + ", ".join(words)
        else:
            msg = "; ".join(dict.fromkeys(_message(e, root, data, path) for e, _ in errs))
        if err["type"] == "union_tag_invalid":
            value: Any = (err.get("ctx") or {}).get("tag")
        elif found and err["type"] != "missing":
            value = _get(data, path)
        else:
            value = _NO_VALUE
        line = _line_for(lines, path) if found else _line_for(lines, path[:-1])
        problems.append(Problem(dotted(path), msg, line, value))
    problems.sort(key=lambda p: (p.line is None, p.line or 0, p.path))
    return problems


# --------------------------------------------------------------------- trainable import


def check_trainable(cfg: SweepConfig, lines: dict[Path_, int]) -> list[Problem]:
    """Import ``cfg.trainable`` and check it is callable; if it declares
    ``hyperparameters`` (a collection of names), check the search space only samples those.

    The working directory is on ``sys.path`` while importing (as with ``python -m``), so a
    trainable in a local module imports. Importing executes the module's top-level code.
    """
    mod_name, fn_name = cfg.trainable.split(":", 1)
    line = lines.get(("trainable",))
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        if e.name and (mod_name == e.name or mod_name.startswith(e.name + ".")):
            msg = f"cannot import module {mod_name!r}: no module named {e.name!r}"
        else:
            msg = f"importing module {mod_name!r} failed: {type(e).__name__}: {e}"
        return [Problem("trainable", msg, line, cfg.trainable)]
    except Exception as e:  # noqa: BLE001 - any failure of user code is reported, not raised
        msg = f"importing module {mod_name!r} failed: {type(e).__name__}: {e}"
        return [Problem("trainable", msg, line, cfg.trainable)]
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)
    fn = getattr(mod, fn_name, None)
    if fn is None:
        return [
            Problem(
                "trainable",
                f"module {mod_name!r} has no attribute {fn_name!r}",
                line,
                cfg.trainable,
            )
        ]
    if not callable(fn):
        return [
            Problem(
                "trainable", f"is not callable (it is a {type(fn).__name__})", line, cfg.trainable
            )
        ]
    accepted = getattr(fn, "hyperparameters", None)
    problems: list[Problem] = []
    if accepted is not None:
        accepted = set(accepted)
        for name in cfg.search.space:
            if name not in accepted:
                problems.append(
                    Problem(
                        f"search.space.{name}",
                        f"trainable {cfg.trainable} does not take hyperparameter {name!r} "
                        f"(it takes: {', '.join(sorted(accepted))})",
                        lines.get(("search", "space", name)),
                    )
                )
    return problems
