"""The command line and settings files built from Config: one flag per field, and JSON or YAML files read
without running anything from them. Precedence is preset < file < flags."""

from __future__ import annotations

import argparse
import collections.abc
import dataclasses
import json
import os
import re
import typing
from collections.abc import Callable
from typing import Any

import yaml

from paddle_ddpg.config import CHOICES, PRESETS, Config, UsageError, error_summary, field_types
from paddle_ddpg.files import read_regular

CONFIG_FILE_LIMIT = 1 << 20
# No setting takes a longer integer (a seed is below 2**64); Python's own error past 4,300 digits names its setting.
INT_DIGITS = 20
YAML_SUFFIXES = (".yaml", ".yml")


def load_config_file(path: str) -> dict[str, Any]:
    """Config fields from JSON or YAML (by extension, else content), or one section under an env id as in
    rl-baselines3-zoo's files. A key given twice is refused: both formats would silently keep the last value."""
    data, suffix = read_regular(path, CONFIG_FILE_LIMIT, "config file"), os.path.splitext(path)[1].lower()
    try:
        text = data.decode("utf-8")
        is_yaml = suffix in YAML_SUFFIXES or (suffix != ".json" and not text.lstrip().startswith(("{", "[")))
        values = yaml.load(text, Loader=_SettingsLoader) if is_yaml else json.loads(
            text, parse_int=lambda digits: int(_digits(digits)), object_pairs_hook=_json_object)
    except UnicodeDecodeError:
        raise UsageError(f"config file {path} is not UTF-8 text") from None
    except RecursionError:
        raise UsageError(f"config file {path} nests too deeply to be a settings file") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"config file {path} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except UsageError as exc:  # from the JSON hooks, which do not know the path
        raise UsageError(f"config file {path}: {exc}") from None
    except yaml.constructor.ConstructorError as exc:
        tag = re.search(r"tag '([^']*)'", str(exc.problem))
        line = f" (line {exc.problem_mark.line + 1})" if exc.problem_mark else ""
        if tag:
            name = tag.group(1).replace("tag:yaml.org,2002:", "!!")
            raise UsageError(f"config file {path}: YAML tag {name} refused{line}; settings are plain values, and "
                             "a tag could run code") from None
        raise UsageError(f"config file {path} is not valid YAML settings: {exc.problem}{line}") from None
    except yaml.MarkedYAMLError as exc:
        line = f" at line {exc.problem_mark.line + 1}" if exc.problem_mark else ""
        raise UsageError(f"config file {path} is not valid YAML: {exc.problem}{line}") from None
    except yaml.YAMLError as exc:  # unmarked: a byte YAML does not allow, say
        raise UsageError(f"config file {path} is not valid YAML: {error_summary(exc)}") from None
    if not isinstance(values, dict):
        raise UsageError(f"config file {path} must hold a {'mapping' if is_yaml else 'JSON object'} of settings")
    sections = [key for key, value in values.items() if isinstance(value, dict)]
    if values and len(sections) == len(values) and not values.keys() & field_types().keys():
        if len(sections) > 1:
            raise UsageError(f"config file {path} holds settings for {len(sections)} environments "
                             f"({', '.join(map(str, sections))}); keep the one to train")
        return {"env": sections[0], **values[sections[0]]}
    return values


def _digits(number: str, error: Callable[[str], Exception] = UsageError) -> str:
    """`number`, or `error` if no setting takes that many digits (argparse's own error would repeat them all)."""
    if (digits := sum(c.isalnum() for c in number)) > INT_DIGITS:
        raise error(f"an integer of {digits} digits; no setting takes more than {INT_DIGITS}")
    return number


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if repeated := [key for key, count in collections.Counter(key for key, _ in pairs).items() if count > 1]:
        raise UsageError(f"key {repeated[0]!r} appears more than once")
    return dict(pairs)


class _SettingsLoader(yaml.SafeLoader):
    """PyYAML's safe loader (a tag such as !!python/object, which the full loader would call, stops the load),
    refusing a repeated key and a long integer; no aliases, as nested ones stand for billions of values that any
    walk (an error's repr) expands; YAML 1.2's floats, as 1.1 reads 1e-4 as a string."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "an alias (*name) stands for other values; write them "
                                              "out", self.peek_event().start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # what a merge (<<) brings in may be overridden
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, collections.abc.Hashable):
                continue  # the base class's error
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} appears more than once",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        _digits(node.value, lambda problem: yaml.constructor.ConstructorError(None, None, problem, node.start_mark))
        return super().construct_yaml_int(node)


_SettingsLoader.add_constructor("tag:yaml.org,2002:int", _SettingsLoader.construct_yaml_int)
_SettingsLoader.add_implicit_resolver("tag:yaml.org,2002:float",
                                      re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
                                      list("-+0123456789"))


class Parser(argparse.ArgumentParser):
    """argparse with the programs' error format: one line on stderr, no usage dump."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")

    def fail(self, exc: Exception, prefix: str = "") -> typing.NoReturn:
        """Status 2 for the user's input (UsageError), 1 for a disk that fills or a run that failed."""
        self.exit(2 if isinstance(exc, UsageError) else 1, f"{self.prog}: error: {prefix}{exc}\n")


_METAVARS = {"env": "ID", "logdir": "DIR", "model_dir": "DIR", "run_name": "NAME"}


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per Config field, named after it with dashes; unset flags stay out of the namespace."""
    group = parser.add_argument_group("settings (every Config field; shown defaults are the tutorial preset's)")
    for f in dataclasses.fields(Config):
        kind, default = field_types()[f.name], getattr(PRESETS["tutorial"], f.name)
        shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
        kwargs: dict[str, Any] = dict(dest=f.name, default=argparse.SUPPRESS,
                                      help=f.metadata["help"] + (f" (tutorial: {shown})" if shown != "" else ""))
        if typing.get_origin(kind) is tuple:
            kwargs.update(type=_integer, nargs="+", metavar="N")
        elif f.name in CHOICES:
            kwargs.update(type=kind, choices=CHOICES[f.name])
        else:
            kwargs.update(type=_integer if kind is int else kind,
                          metavar=_METAVARS.get(f.name, {int: "N", float: "X"}.get(kind, "S")))
        group.add_argument("--" + f.name.replace("_", "-"), **kwargs)


def _integer(text: str) -> int:
    if text.strip().lstrip("+-").replace("_", "").isdigit():
        _digits(text, argparse.ArgumentTypeError)
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None


def resolve_config(args: argparse.Namespace, base: Config | None = None) -> Config:
    """`base` (default: the --preset), then the --config file, then explicit flags; validated."""
    if base is None:
        preset = getattr(args, "preset", None) or "tutorial"
        if preset not in PRESETS:
            raise UsageError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
        base = PRESETS[preset]
    if getattr(args, "config", None):
        base = base.updated(load_config_file(args.config), source=args.config)
    flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config) if hasattr(args, f.name)}
    return base.updated(flags, source="command line").validate()
