"""The command line and settings files built from Config: one flag per field, and JSON or YAML files read
without running anything from them. Precedence is preset < file < flags."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import typing
from typing import Any

import yaml

from paddle_ddpg.config import ALGOS, ENGINES, NOISES, PRESETS, Config, UsageError, error_summary, field_types

CONFIG_FILE_LIMIT = 1 << 20


def load_config_file(path: str) -> dict[str, Any]:
    """Read a file of Config fields: JSON (the file a run writes as config.json reads back unchanged) or YAML,
    told apart by the extension (.json; .yaml or .yml), else by the content (JSON starts with "{" or "[").

    Either may hold the settings themselves or, as rl-baselines3-zoo's hyperparameter files do, one section
    of them under an env id, which then sets `env`. At most CONFIG_FILE_LIMIT bytes are read: a settings
    file is a few kilobytes, and a path such as /dev/zero would otherwise be read until memory runs out.
    """
    try:
        with open(path, "rb") as f:
            data = f.read(CONFIG_FILE_LIMIT + 1)
        if len(data) > CONFIG_FILE_LIMIT:
            raise UsageError(f"config file {path} is larger than {CONFIG_FILE_LIMIT // 1024} KiB; not a settings file")
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise UsageError(f"config file not found: {path}") from None
    except OSError as exc:
        raise UsageError(f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"config file {path} is not UTF-8 text") from None
    suffix = os.path.splitext(path)[1].lower()
    is_yaml = suffix in YAML_SUFFIXES or (suffix != ".json" and not text.lstrip().startswith(("{", "[")))
    try:
        values = _parse_yaml(text, path) if is_yaml else json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"config file {path} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
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


YAML_SUFFIXES = (".yaml", ".yml")


class _SettingsLoader(yaml.SafeLoader):
    """PyYAML's safe loader (plain values only: a tag such as !!python/object, which the full loader would
    call, stops the load), without aliases, and with YAML 1.2's floats.

    An alias repeats a node by reference, so a few lines of nested aliases stand for billions of values that
    any walk over them (an error message's repr) would expand. YAML 1.1 reads 1e-4 as a string (it wants
    1.0e-4), which is why the zoo writes !!float 1e-4; people write 1e-4.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "an alias (*name) stands for other values; write them "
                                              "out", self.peek_event().start_mark)
        return super().compose_node(parent, index)


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
            kwargs.update(type=int, nargs="+", metavar="N")
        elif kind is bool:
            kwargs.update(action=argparse.BooleanOptionalAction)
        elif f.name in _CHOICES:
            kwargs.update(type=kind, choices=_CHOICES[f.name])
        else:
            kwargs.update(type=kind, metavar=_METAVARS.get(f.name, {int: "N", float: "X"}.get(kind, "S")))
        group.add_argument("--" + f.name.replace("_", "-"), **kwargs)
    # Version 0.1's flags for the engine, kept as hidden aliases.
    for flag, engine in (("--fused", "fast"), ("--no-fused", "plain")):
        group.add_argument(flag, dest="engine", action="store_const", const=engine, default=argparse.SUPPRESS,
                           help=argparse.SUPPRESS)


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
