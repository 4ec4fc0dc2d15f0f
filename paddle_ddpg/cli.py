"""The command line and settings files built from Config: one flag per field, and JSON or YAML files read
without running anything from them. Precedence is preset < file < flags."""

from __future__ import annotations

import argparse
import collections
import collections.abc
import dataclasses
import json
import os
import re
import stat
import typing
from typing import Any

import yaml

from paddle_ddpg.config import ALGOS, ENGINES, NOISES, PRESETS, Config, UsageError, error_summary, field_types

CONFIG_FILE_LIMIT = 1 << 20
# No setting takes an integer this long (a seed is below 2**64: 20 digits, 16 in hex); Python refuses to convert
# one of over 4,300 digits with an error that names its own interpreter setting.
INT_DIGITS = 20


def load_config_file(path: str) -> dict[str, Any]:
    """Read a file of Config fields: JSON (the file a run writes as config.json reads back unchanged) or YAML,
    told apart by the extension (.json; .yaml or .yml), else by the content (JSON starts with "{" or "[").

    Either may hold the settings themselves or, as rl-baselines3-zoo's hyperparameter files do, one section
    of them under an env id, which then sets `env`. A key given twice is refused: the two formats would
    silently keep the last value.
    """
    text = _read_settings_text(path)
    suffix = os.path.splitext(path)[1].lower()
    is_yaml = suffix in YAML_SUFFIXES or (suffix != ".json" and not text.lstrip().startswith(("{", "[")))
    try:
        values = _parse_yaml(text, path) if is_yaml else _parse_json(text, path)
    except RecursionError:
        raise UsageError(f"config file {path} nests too deeply to be a settings file") from None
    if not isinstance(values, dict):
        raise UsageError(f"config file {path} must hold a {'mapping' if is_yaml else 'JSON object'} of settings")
    sections = [key for key, value in values.items() if isinstance(value, dict)]
    if values and len(sections) == len(values) and not values.keys() & field_types().keys():
        if len(sections) > 1:
            raise UsageError(f"config file {path} holds settings for {len(sections)} environments "
                             f"({', '.join(map(str, sections))}); keep the one to train")
        return {"env": sections[0], **values[sections[0]]}
    return values


def _read_settings_text(path: str) -> str:
    """At most CONFIG_FILE_LIMIT bytes of a regular file, as UTF-8. A settings file is a few kilobytes; a FIFO
    would block the open itself, and /dev/zero would be read until memory runs out, so the path's kind is
    checked before it is opened, and again on what was opened (the path may have been replaced meanwhile)."""
    try:
        before = os.stat(path)
        if not stat.S_ISREG(before.st_mode):
            raise UsageError(f"config file {path} is {_kind(before.st_mode)}, not a regular file")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        with open(fd, "rb") as f:
            opened = os.fstat(fd)
            if (opened.st_dev, opened.st_ino) != (before.st_dev, before.st_ino) or not stat.S_ISREG(opened.st_mode):
                raise UsageError(f"config file {path} was replaced while it was being opened")
            data = f.read(CONFIG_FILE_LIMIT + 1)
        if len(data) > CONFIG_FILE_LIMIT:
            raise UsageError(f"config file {path} is larger than {CONFIG_FILE_LIMIT // 1024} KiB; not a settings file")
        return data.decode("utf-8")
    except FileNotFoundError:
        raise UsageError(f"config file not found: {path}") from None
    except OSError as exc:
        raise UsageError(f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"config file {path} is not UTF-8 text") from None


def _kind(mode: int) -> str:
    return ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "a device")


def _too_long(number: str) -> str | None:
    digits = sum(c.isalnum() for c in number)
    return f"an integer of {digits} digits; no setting takes more than {INT_DIGITS}" if digits > INT_DIGITS else None


def _parse_json(text: str, path: str) -> Any:
    try:
        return json.loads(text, parse_int=_json_int, object_pairs_hook=_json_object)
    except json.JSONDecodeError as exc:
        raise UsageError(f"config file {path} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except UsageError as exc:  # from the hooks, which do not know the path
        raise UsageError(f"config file {path}: {exc}") from None


def _json_int(digits: str) -> int:
    if problem := _too_long(digits):
        raise UsageError(problem)
    return int(digits)


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if repeated := [key for key, count in collections.Counter(key for key, _ in pairs).items() if count > 1]:
        raise UsageError(f"key {repeated[0]!r} appears more than once")
    return dict(pairs)


YAML_SUFFIXES = (".yaml", ".yml")


class _SettingsLoader(yaml.SafeLoader):
    """PyYAML's safe loader (plain values only: a tag such as !!python/object, which the full loader would
    call, stops the load), without aliases, with YAML 1.2's floats, refusing a repeated key and an integer
    longer than INT_DIGITS.

    An alias repeats a node by reference, so a few lines of nested aliases stand for billions of values that
    any walk over them (an error message's repr) would expand. YAML 1.1 reads 1e-4 as a string (it wants
    1.0e-4), which is why the zoo writes !!float 1e-4; people write 1e-4.
    """

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
        if problem := _too_long(node.value):
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark)
        return super().construct_yaml_int(node)


_SettingsLoader.add_constructor("tag:yaml.org,2002:int", _SettingsLoader.construct_yaml_int)
_SettingsLoader.add_implicit_resolver("tag:yaml.org,2002:float",
                                      re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
                                      list("-+0123456789"))


def _parse_yaml(text: str, path: str) -> Any:
    try:
        return yaml.load(text, Loader=_SettingsLoader)
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


class Parser(argparse.ArgumentParser):
    """argparse with the project's error format: one line on stderr, exit status 2, no usage dump."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


_METAVARS = {"env": "ID", "logdir": "DIR", "model_dir": "DIR", "run_name": "NAME"}
_CHOICES = {"device": ("cpu", "gpu"), "noise": NOISES, "algo": ALGOS, "engine": ENGINES}


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per Config field, named after it with dashes; unset flags stay out of the namespace."""
    types_ = field_types()
    group = parser.add_argument_group("settings (every Config field; shown defaults are the tutorial preset's)")
    for f in dataclasses.fields(Config):
        kind = types_[f.name]
        default = getattr(PRESETS["tutorial"], f.name)
        shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
        help_ = f.metadata["help"] + (f" (tutorial: {shown})" if shown != "" else "")
        kwargs: dict[str, Any] = dict(dest=f.name, default=argparse.SUPPRESS, help=help_)
        if typing.get_origin(kind) is tuple:
            kwargs.update(type=_integer, nargs="+", metavar="N")
        elif kind is bool:
            kwargs.update(action=argparse.BooleanOptionalAction)
        elif f.name in _CHOICES:
            kwargs.update(type=kind, choices=_CHOICES[f.name])
        else:
            metavar = _METAVARS.get(f.name, {int: "N", float: "X"}.get(kind, "S"))
            kwargs.update(type=_integer if kind is int else kind, metavar=metavar)
        group.add_argument("--" + f.name.replace("_", "-"), **kwargs)
    # Version 0.1's flags for the engine, kept as hidden aliases.
    for flag, engine in (("--fused", "fast"), ("--no-fused", "plain")):
        group.add_argument(flag, dest="engine", action="store_const", const=engine, default=argparse.SUPPRESS,
                           help=argparse.SUPPRESS)


def _integer(text: str) -> int:
    """int() with a settings file's limit on digits: argparse's error would repeat them all."""
    if text.strip().lstrip("+-").replace("_", "").isdigit() and (problem := _too_long(text)):
        raise argparse.ArgumentTypeError(problem)
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
