"""Config: the tutorial preset, one flag per field, preset < file < flags, and one-sentence errors."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium
import pytest
import yaml
from conftest import error_lines

from paddle_ddpg.cli import CONFIG_FILE_LIMIT, load_config_file, resolve_config
from paddle_ddpg.config import PRESETS, Config, UsageError
from paddle_ddpg.env import make_env
from paddle_ddpg.train import build_parser
from paddle_ddpg.train import main as train_main


def _resolve(*argv: str) -> Config:
    return resolve_config(build_parser().parse_args(list(argv)))


def _episode_length(config: Config) -> int:
    """Steps until the env made with the config's step limit truncates an episode."""
    env = make_env(config.env, config.max_episode_steps)
    try:
        env.reset(seed=0)
        for step in range(1, 10_000):
            if any(env.step(env.action_space.sample())[2:4]):
                return step
        raise AssertionError("episode never ended")
    finally:
        env.close()


def _write(path: Path, values: Any) -> str:
    path.write_text(json.dumps(values))
    return str(path)


def test_tutorial_preset_holds_the_tutorials_values() -> None:
    """Section 四 of the tutorial, hyperparameter for hyperparameter; the default run is the tutorial's."""
    c = PRESETS["tutorial"]
    assert (c.lr_actor, c.lr_critic) == (1e-5, 3e-5)
    assert (c.gamma, c.tau) == (0.99, 0.001)
    assert (c.batch_size, c.memory_size, c.learning_starts, c.explore) == (32, 50000, 1280, 50000)
    assert c.noise == "gaussian" and c.noise_std == 0.2
    assert c.episodes == 200
    assert _episode_length(c) == 200  # the tutorial's `for time_step in range(200)`
    assert (c.reward_offset, c.reward_scale) == (8.1, 8.1)
    assert c.actor_hidden == (256, 128) and c.critic_hidden == (256, 128)
    assert c.save_interval == 200 and c.log_interval == 10
    assert c.env == "Pendulum-v1"
    assert c == Config()
    assert _resolve() == c  # no flags: the tutorial preset


# A valid value different from the tutorial's for every field, and the flags that set it.
NON_DEFAULTS: dict[str, tuple[list[str], Any]] = {
    "env": (["--env", "MountainCarContinuous-v0"], "MountainCarContinuous-v0"),
    "episodes": (["--episodes", "7"], 7),
    "total_steps": (["--total-steps", "5000"], 5000),
    "max_episode_steps": (["--max-episode-steps", "100"], 100),
    "seed": (["--seed", "42"], 42),
    "device": (["--device", "gpu"], "gpu"),
    "threads": (["--threads", "1"], 1),
    "logdir": (["--logdir", "runs/vdl"], "runs/vdl"),
    "model_dir": (["--model-dir", "ckpt"], "ckpt"),
    "run_name": (["--run-name", "mine"], "mine"),
    "actor_hidden": (["--actor-hidden", "64", "64"], (64, 64)),
    "critic_hidden": (["--critic-hidden", "32", "16", "8"], (32, 16, 8)),
    "critic_action_layer": (["--critic-action-layer", "0"], 0),
    "algo": (["--algo", "td3"], "td3"),
    "policy_delay": (["--policy-delay", "3"], 3),
    "target_noise": (["--target-noise", "0.1"], 0.1),
    "target_noise_clip": (["--target-noise-clip", "0.3"], 0.3),
    "lr_actor": (["--lr-actor", "1e-4"], 1e-4),
    "lr_critic": (["--lr-critic", "2e-3"], 2e-3),
    "gamma": (["--gamma", "0.95"], 0.95),
    "tau": (["--tau", "0.005"], 0.005),
    "batch_size": (["--batch-size", "64"], 64),
    "tanh_penalty": (["--tanh-penalty", "0.01"], 0.01),
    "engine": (["--engine", "plain"], "plain"),
    "memory_size": (["--memory-size", "1000"], 1000),
    "learning_starts": (["--learning-starts", "100"], 100),
    "random_steps": (["--random-steps", "500"], 500),
    "reward_offset": (["--reward-offset", "0"], 0.0),
    "reward_scale": (["--reward-scale", "1"], 1.0),
    "noise": (["--noise", "ou"], "ou"),
    "noise_std": (["--noise-std", "0.3"], 0.3),
    "ou_theta": (["--ou-theta", "0.2"], 0.2),
    "explore": (["--explore", "1000"], 1000),
    "epsilon_min": (["--epsilon-min", "0.05"], 0.05),
    "log_interval": (["--log-interval", "1"], 1),
    "loss_log_interval": (["--loss-log-interval", "1"], 1),
    "save_interval": (["--save-interval", "5"], 5),
    "eval_interval": (["--eval-interval", "0"], 0),
    "eval_step_interval": (["--eval-step-interval", "5000"], 5000),
    "eval_episodes": (["--eval-episodes", "3"], 3),
}


def test_every_field_has_a_test_value() -> None:
    """Keeps the flag tests below complete when a field is added."""
    assert set(NON_DEFAULTS) == {f.name for f in dataclasses.fields(Config)}


@pytest.mark.parametrize("name", sorted(NON_DEFAULTS))
def test_each_flag_sets_its_field_only(name: str) -> None:
    """`--lr-actor 1e-4` sets lr_actor and nothing else; the value arrives with the field's type."""
    argv, expected = NON_DEFAULTS[name]
    config = resolve_config(build_parser().parse_args(argv))
    assert getattr(config, name) == expected
    assert type(getattr(config, name)) is type(expected)
    others = {k: v for k, v in config.to_dict().items() if k != name}
    assert others == {k: v for k, v in Config().to_dict().items() if k != name}


def test_all_flags_together() -> None:
    """All flags at once give exactly the expected Config."""
    argv = [arg for flags, _ in NON_DEFAULTS.values() for arg in flags]
    assert _resolve(*argv) == Config(**{k: v for k, (_, v) in NON_DEFAULTS.items()})


def test_precedence_preset_then_file_then_flags(tmp_path: Path) -> None:
    """The file overrides the preset, a flag overrides the file, and untouched fields keep the preset's."""
    path = _write(tmp_path / "run.json", {"lr_actor": 2e-4, "batch_size": 64, "actor_hidden": [32, 32]})
    config = _resolve("--preset", "fast", "--config", path, "--batch-size", "128")
    fast = PRESETS["fast"]
    assert config.lr_actor == 2e-4  # file over preset
    assert config.batch_size == 128  # flag over file
    assert config.actor_hidden == (32, 32)  # file, list -> tuple
    assert config.lr_critic == fast.lr_critic and config.tau == fast.tau  # preset
    assert config.lr_critic != Config().lr_critic  # ... and not the tutorial's


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_each_preset_is_valid_and_names_a_registered_env(name: str) -> None:
    """A preset's env id is gymnasium's (a typo would surface only when a user picks it) and its values validate."""
    preset = PRESETS[name]
    preset.validate()
    assert gymnasium.spec(preset.env).id == preset.env


def test_run_config_json_reads_back_unchanged(tmp_path: Path) -> None:
    """`--config model/<run>/config.json` repeats a run: to_dict() written as JSON resolves to the same Config."""
    original = Config(**{k: v for k, (_, v) in NON_DEFAULTS.items()})
    path = _write(tmp_path / "config.json", original.to_dict())
    assert _resolve("--config", path) == original


def test_config_is_usable_from_python() -> None:
    """Config(episodes=50) works as in the README and is immutable (one object shared by all code)."""
    config = Config(episodes=50, lr_actor=1e-4)
    assert config.episodes == 50 and config.lr_actor == 1e-4 and config.tau == 0.001
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.episodes = 3  # type: ignore[misc]


@pytest.mark.parametrize("argv, message", [
    (["--lr-actor", "0"], "lr_actor"),
    (["--lr-actor=-1e-4"], "lr_actor"),
    (["--lr-critic", "0"], "lr_critic"),
    (["--tau", "0"], "tau"),
    (["--tau", "1.5"], "tau"),
    (["--tau", "nan"], "tau"),
    (["--gamma", "1.5"], "gamma"),
    (["--gamma", "-0.1"], "gamma"),
    (["--batch-size", "64", "--memory-size", "32"], "batch_size"),
    (["--batch-size", "0"], "batch_size"),
    (["--episodes", "0"], "episodes"),
    (["--episodes", "-3"], "episodes"),
    (["--memory-size", "0"], "memory_size"),
    (["--reward-scale", "0"], "reward_scale"),
    (["--noise-std", "-0.1"], "noise_std"),
    (["--tanh-penalty=-0.01"], "tanh_penalty"),
    (["--explore", "0"], "explore"),
    (["--epsilon-min", "1.5"], "epsilon_min"),
    (["--actor-hidden", "64", "0"], "actor_hidden"),
    (["--log-interval", "0"], "log_interval"),
    (["--loss-log-interval", "0"], "loss_log_interval"),
    (["--critic-action-layer", "3"], "critic_action_layer"),
    (["--critic-action-layer", "-1"], "critic_action_layer"),
    (["--threads", "-1"], "threads"),
    (["--eval-episodes", "0"], "eval_episodes"),
    (["--run-name", "a/b"], "run_name"),
    (["--preset", "nope"], "preset"),
    (["--seed=-1"], "seed"),
    (["--reward-offset", "inf"], "reward_offset"),
    (["--lr-critic", "inf"], "lr_critic"),
])
def test_bad_values_raise_usage_error(argv: list[str], message: str) -> None:
    """Values that would crash later or train nonsense are refused up front, naming the setting."""
    with pytest.raises(UsageError, match=message):
        _resolve(*argv)


@pytest.mark.parametrize("changes, message", [
    (dict(episodes="5"), "episodes must be an integer"),
    (dict(episodes=True), "episodes must be an integer"),
    (dict(actor_hidden=(64.5,)), "actor_hidden must be a list of integers"),
    (dict(lr_actor="1e-4"), "lr_actor must be a number"),
    (dict(noise_std=float("nan")), "noise_std must be a finite number"),
])
def test_config_built_in_python_is_type_checked(changes: dict[str, Any], message: str) -> None:
    """Config(...) from Python skips the CLI's parsing: validate() must still name a wrong type, not let it
    fail later inside Paddle."""
    with pytest.raises(UsageError, match=message):
        Config(**changes).validate()


def test_tau_one_and_gamma_bounds_are_allowed() -> None:
    """The edges of the documented ranges are valid: tau 1 (hard update), gamma 0 and 1."""
    assert _resolve("--tau", "1").tau == 1.0
    assert _resolve("--gamma", "0").gamma == 0.0
    assert _resolve("--gamma", "1").gamma == 1.0


@pytest.mark.parametrize("values, message", [
    ({"lr_actr": 1e-4}, "unknown key 'lr_actr'"),
    ({"batch_size": "32"}, "batch_size must be an integer"),
    ({"episodes": 5.0}, "episodes must be an integer"),
    ({"episodes": True}, "episodes must be an integer"),
    ({"lr_actor": "fast"}, "lr_actor must be a number"),
    ({"lr_actor": False}, "lr_actor must be a number"),
    ({"actor_hidden": [64, "x"]}, "actor_hidden must be a list of integers"),
    ({"actor_hidden": 64}, "actor_hidden must be a list of integers"),
    ({"env": None}, "env must be a string"),
    ({"tau": 2.0}, "tau must be in"),  # well-typed but out of range: validated like a flag
])
def test_bad_config_file_contents(tmp_path: Path, values: dict[str, Any], message: str) -> None:
    """Unknown keys (typos) and wrong types in a --config file are refused with the key named."""
    path = _write(tmp_path / "bad.json", values)
    with pytest.raises(UsageError, match=message):
        _resolve("--config", path)


def test_config_file_ints_are_accepted_as_floats(tmp_path: Path) -> None:
    """JSON has one number type: `"gamma": 1` is a valid float setting."""
    path = _write(tmp_path / "ok.json", {"gamma": 1, "reward_offset": 0})
    config = _resolve("--config", path)
    assert config.gamma == 1.0 and isinstance(config.gamma, float)
    assert config.reward_offset == 0.0 and isinstance(config.reward_offset, float)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="config file not found"):
        _resolve("--config", str(tmp_path / "nope.json"))


@pytest.mark.parametrize("text", ['{"lr_actor": 1e-4,', "lr_actor = 1e-4", ""])
def test_unparsable_config_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(text)
    with pytest.raises(UsageError, match="not valid JSON"):
        _resolve("--config", str(path))


def test_config_file_must_be_an_object(tmp_path: Path) -> None:
    path = _write(tmp_path / "list.json", [1, 2])
    with pytest.raises(UsageError, match="JSON object"):
        _resolve("--config", path)


def _train_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path, *argv: str) -> str:
    """`train` given `argv`: exit status 2, exactly one line on stderr (returned), and no run made. The run it
    is given is tiny and inside tmp_path, so that a check that lets it through fails fast."""
    run = ["--episodes", "1", "--max-episode-steps", "5", "--eval-interval", "0", "--logdir", str(tmp_path / "logs"),
           "--model-dir", str(tmp_path / "model")]
    with pytest.raises(SystemExit) as caught:
        train_main([*argv, *run])
    assert caught.value.code == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1, lines
    assert not (tmp_path / "logs").exists() and not (tmp_path / "model").exists()
    return lines[0]


@contextlib.contextmanager
def _fails_after(seconds: int) -> Iterator[None]:
    """A hang inside the block (an open() of a FIFO that no one writes) becomes a failure."""
    def hung(*_: Any) -> None:
        raise TimeoutError(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("kind", ["a FIFO", "a directory", "a device"])
def test_only_regular_files_are_read_as_configs(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                kind: str) -> None:
    """A FIFO would block open() until someone writes to it, /dev/zero would be read without end: anything but
    a regular file is refused in one line before it is opened, and nothing of a run is made."""
    path = {"a FIFO": tmp_path / "settings.yaml", "a directory": tmp_path, "a device": Path("/dev/zero")}[kind]
    if kind == "a FIFO":
        os.mkfifo(path)
    with _fails_after(20):
        line = _train_usage_error(capsys, tmp_path, "--config", str(path))
    assert line.endswith(f"error: config file {path} is {kind}, not a regular file")


def test_a_config_replaced_after_its_check_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check and the open are two steps: a FIFO swapped in between is caught on what was opened (without
    blocking: the open does not wait for a writer)."""
    path = tmp_path / "run.json"
    _write(path, {"episodes": 5})
    real_stat = os.stat

    def stat_then_swap(name: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        result = real_stat(name, *args, **kwargs)
        if Path(name) == path:
            path.unlink()
            os.mkfifo(path)
        return result

    monkeypatch.setattr(os, "stat", stat_then_swap)
    with _fails_after(20), pytest.raises(UsageError, match="was replaced while it was being opened"):
        load_config_file(str(path))


# A file name, what it holds, and what the error line says after "config file <path>".
LONG_OR_REPEATED = {
    "big.json": ('{"episodes": ' + "1" * 5000 + "}", ": an integer of 5000 digits; no setting takes more than 20"),
    "big.yaml": ("seed: 7\nepisodes: " + "1" * 5000 + "\n",
                 " is not valid YAML settings: an integer of 5000 digits; no setting takes more than 20 (line 2)"),
    "hex.yaml": ("seed: 0x" + "f" * 5000 + "\n", " is not valid YAML settings: an integer of 5002 digits"),
    "dup.json": ('{"episodes": 3, "lr_actor": 1e-4, "episodes": 4}', ": key 'episodes' appears more than once"),
    "nested.json": ('{"Pendulum-v1": {"tau": 0.1, "tau": 0.2}}', ": key 'tau' appears more than once"),
    "dup.yaml": ("episodes: 3\nlr_actor: 1e-4\nepisodes: 4\n",
                 " is not valid YAML settings: key 'episodes' appears more than once (line 3)"),
    "quoted.yaml": ("tau: 0.1\n'tau': 0.2\n", " is not valid YAML settings: key 'tau' appears more than once (line 2)"),
    "nested.yaml": ("Pendulum-v1:\n  tau: 0.1\n  tau: 0.2\n",
                    " is not valid YAML settings: key 'tau' appears more than once (line 3)"),
}


@pytest.mark.parametrize("name", sorted(LONG_OR_REPEATED))
def test_huge_integers_and_repeated_keys_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      name: str) -> None:
    """Python refuses to convert an integer of over 4,300 digits (a ValueError traceback before); JSON and YAML
    would keep the last of two values for one key without a word."""
    text, message = LONG_OR_REPEATED[name]
    (tmp_path / name).write_text(text)
    line = _train_usage_error(capsys, tmp_path, "--config", str(tmp_path / name))
    assert f"error: config file {tmp_path / name}{message}" in line


def test_a_yaml_merge_may_be_overridden(tmp_path: Path) -> None:
    """`<<` brings in keys that the mapping may set again: that is YAML's rule, not a repeated key."""
    path = tmp_path / "merge.yaml"
    path.write_text("<<: {episodes: 3, tau: 0.1}\nepisodes: 4\n")
    assert load_config_file(str(path)) == {"episodes": 4, "tau": 0.1}


def test_flag_integers_keep_the_file_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """argparse would repeat all 5000 digits in its error line."""
    line = _train_usage_error(capsys, tmp_path, "--seed", "1" * 5000)
    assert line.endswith("argument --seed: an integer of 5000 digits; no setting takes more than 20 (see --help)")
    assert _train_usage_error(capsys, tmp_path, "--actor-hidden", "64", "x").endswith(
        "argument --actor-hidden: invalid int value: 'x' (see --help)")


def test_run_name_must_be_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A name in another encoding reaches Python as surrogates (os.fsdecode(b"\\xff") == "\\udcff"), which
    cannot be written to the run's JSON files: one line before anything is made (a UnicodeEncodeError before)."""
    name = os.fsdecode(b"run\xff")
    line = _train_usage_error(capsys, tmp_path, "--run-name", name)
    assert line.endswith("error: run_name must be UTF-8 text (the run writes it to JSON), got 'run\\udcff'")
    with pytest.raises(UsageError, match="env must be UTF-8 text"):
        Config(env=os.fsdecode(b"Pendulum\xfe")).validate()


@pytest.mark.parametrize("changes, message", [
    (dict(episodes=10**5000), "episodes must be within [+]-2[*][*]64, got an integer of 16610 bits"),
    (dict(actor_hidden=(64, -10**5000)), "actor_hidden must be within [+]-2[*][*]64"),
    (dict(threads=2**31), "threads must be in .0, 2[*][*]31., got 2147483648"),
])
def test_integers_out_of_any_range(changes: dict[str, Any], message: str) -> None:
    """An integer too long to print would fail the error message itself; Paddle takes threads as a C int
    (a TypeError traceback before)."""
    with pytest.raises(UsageError, match=message):
        Config(**changes).validate()


def test_engine_from_flags_and_file(tmp_path: Path) -> None:
    """`--engine fast|plain` from a flag or a file; anything else, and version 0.1's `fused` key, is refused."""
    assert PRESETS["tutorial"].engine == "fast"
    assert _resolve("--engine", "plain").engine == "plain"
    assert _resolve("--config", _write(tmp_path / "off.json", {"engine": "plain"})).engine == "plain"
    with pytest.raises(UsageError, match="engine must be one of fast, plain, got 'jit'"):
        _resolve("--config", _write(tmp_path / "bad.json", {"engine": "jit"}))
    with pytest.raises(UsageError, match="unknown key 'fused'"):
        _resolve("--config", _write(tmp_path / "bad.json", {"fused": True}))


# YAML: the same keys and checks, through PyYAML's safe loader.

def test_yaml_and_json_files_give_equal_configs(tmp_path: Path) -> None:
    """Every field set to a non-default value, written as JSON and as YAML (.yaml, .yml, and no extension: told
    by content), resolves to the same Config, on top of a preset and under a flag alike."""
    values = Config(**{k: v for k, (_, v) in NON_DEFAULTS.items()}).to_dict()
    json_path = _write(tmp_path / "run.json", values)
    expected = _resolve("--preset", "fast", "--config", json_path, "--seed", "5")
    assert expected.seed == 5 and expected.lr_actor == 1e-4
    for name in ("run.yaml", "run.yml", "settings"):
        (tmp_path / name).write_text(yaml.safe_dump(values))
        assert _resolve("--preset", "fast", "--config", str(tmp_path / name), "--seed", "5") == expected


def test_yaml_as_people_write_it(tmp_path: Path) -> None:
    """Comments, 1e-4 (a string to YAML 1.1, a float here), the zoo's !!float, block and flow lists, ints where
    floats go; and rl-baselines3-zoo's layout, settings under an env id, which sets env."""
    path = tmp_path / "hand.yaml"
    path.write_text("# tuned by hand\nlr_actor: 1e-4\nlr_critic: !!float 3e-4\ngamma: 1\nbatch_size: 256\n"
                    "actor_hidden:\n  - 64\n  - 64\ncritic_hidden: [32, 32]\nnoise: ou\n")
    config = _resolve("--config", str(path))
    assert (config.lr_actor, config.lr_critic, config.gamma, config.batch_size) == (1e-4, 3e-4, 1.0, 256)
    assert config.actor_hidden == (64, 64) and config.critic_hidden == (32, 32) and config.noise == "ou"
    assert type(config.gamma) is float
    zoo = tmp_path / "ddpg.yml"
    zoo.write_text("MountainCarContinuous-v0:\n  total_steps: 300000\n  lr_actor: !!float 1e-3\n")
    config = _resolve("--config", str(zoo))
    assert (config.env, config.total_steps, config.lr_actor) == ("MountainCarContinuous-v0", 300000, 1e-3)


@pytest.mark.parametrize("text, message", [
    ("lr_actr: 1e-4\n", "unknown key 'lr_actr'"),
    ("batch_size: '32'\n", "batch_size must be an integer"),
    ("episodes: 5.0\n", "episodes must be an integer"),
    ("lr_actor: yes\n", "lr_actor must be a number"),  # YAML 1.1's boolean
    ("actor_hidden: [64, x]\n", "actor_hidden must be a list of integers"),
    ("run_name: 2024-01-01\n", "run_name must be a string"),  # a date to YAML
    ("tau: 2.0\n", "tau must be in"),
    ("- lr_actor\n", "must hold a mapping of settings"),
    ("", "must hold a mapping of settings"),
    ("lr_actor: [1e-4\n", "is not valid YAML: .* at line 2"),
    ("a: &x [1, 2]\nb: *x\n", "an alias"),
    ("Pendulum-v1: {lr_actor: 1e-3}\nHopper-v5: {lr_actor: 1e-4}\n", "settings for 2 environments"),
    ("? [a, b]\n: 1\n", "not valid YAML settings: found unhashable key"),
])
def test_bad_yaml_files(tmp_path: Path, text: str, message: str) -> None:
    """YAML gets the JSON file's checks, and its own failures are one sentence with the line."""
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message) as caught:
        _resolve("--config", str(path))
    assert "\n" not in str(caught.value)


def test_a_run_directorys_config_json_stays_json(tmp_path: Path) -> None:
    """A .json file is read as JSON only: YAML in config.json is an error, not silently another format."""
    path = tmp_path / "config.json"
    path.write_text("lr_actor: 1e-4\n")
    with pytest.raises(UsageError, match="not valid JSON"):
        _resolve("--config", str(path))


def test_yaml_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text("lr_actor: 1e-4\n" + "#" * CONFIG_FILE_LIMIT)
    with pytest.raises(UsageError, match="larger than 1024 KiB"):
        _resolve("--config", str(path))


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system", "!!python/object/new:os.system",
                                 "!!python/name:os.system", "!!python/module:os"])
def test_yaml_python_tags_are_refused_and_run_nothing(tmp_path: Path, tag: str) -> None:
    """The full loader would call os.system here; the settings loader refuses the tag and builds nothing."""
    marker = tmp_path / "marker"
    path = tmp_path / "evil.yaml"
    path.write_text(f'lr_actor: 1e-4\nx: {tag} ["touch {marker}"]\n')
    with pytest.raises(UsageError, match=f"YAML tag {re.escape(tag.split(':')[0])}.* refused .line 2."):
        _resolve("--config", str(path))
    assert not marker.exists()


def test_yaml_python_tag_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """`train --config evil.yaml`: one line, exit 2, no marker, and no run directory or log made."""
    marker = tmp_path / "marker"
    (tmp_path / "evil.yaml").write_text(f'x: !!python/object/apply:os.system ["touch {marker}"]\n')
    monkeypatch.chdir(tmp_path)
    line = _train_usage_error(capsys, tmp_path, "--config", "evil.yaml")
    assert "evil.yaml: YAML tag !!python/object/apply:os.system refused" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.yaml"]
