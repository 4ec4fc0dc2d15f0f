"""Export of a trained actor for deployment (`paddle.jit.save`), and `paddle_ddpg.evaluate` running it."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import paddle
import pytest

from conftest import TrainedRun, assert_usage_error, last_json, run_cli, snapshot
from paddle_ddpg.actor_program import PROGRAM_LIMIT
from paddle_ddpg.agent import DDPG
from paddle_ddpg.config import Config, UsageError
from paddle_ddpg.env import make_env
from paddle_ddpg.export import export_actor
from paddle_ddpg.files import SaveError
from paddle_ddpg.networks import Actor
from paddle_ddpg.policy import META_SUFFIX, PARAMS_SUFFIX, exported_prefix, load_policy, read_meta

EVAL_ARGS = ["--episodes", "3", "--seed", "7"]


def _actor_for(case: str) -> tuple[Actor, str | None]:
    """A randomly initialised actor shaped for `case`: a real env's spaces, or hand-made bounds whose
    three dimensions have different centres and widths (the bias and scale the export must carry)."""
    if case == "asymmetric":
        return Actor(5, 3, [-1.0, 0.0, 2.0], [3.0, 1.0, 5.0], hidden=(32, 32)), None
    if case == "HalfCheetah-v5":
        pytest.importorskip("mujoco")
    env = make_env(case)
    env.close()
    return Actor(env.observation_space.shape[0], env.action_space.shape[0], env.action_space.low,
                 env.action_space.high, hidden=(32, 32)), case


@pytest.mark.parametrize("case", ["Pendulum-v1", "HalfCheetah-v5", "asymmetric"])
def test_exported_model_acts_as_the_actor(tmp_path: Path, case: str) -> None:
    """For a batch of env-scale states, and for one state, the exported program returns the Actor layer's
    env-scale actions; its meta file records the env and the sizes and bounds."""
    paddle.seed(3)
    actor, env_id = _actor_for(case)
    state_dim, action_dim = actor.fcs[0].weight.shape[0], actor.fcs[-1].weight.shape[1]
    files = export_actor(actor, tmp_path / "out" / "actor", env_id, 123)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in files)
    exported, meta = load_policy(tmp_path / "out" / "actor").network, read_meta(str(tmp_path / "out" / "actor"))

    states = np.random.default_rng(0).normal(0.0, 3.0, (256, state_dim)).astype(np.float32)
    with paddle.no_grad():
        expected = actor(paddle.to_tensor(states)).numpy()
        got = exported(paddle.to_tensor(states)).numpy()
        single = exported(paddle.to_tensor(states[:1])).numpy()
    assert got.shape == (256, action_dim)
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
    np.testing.assert_allclose(single, expected[:1], atol=1e-6, rtol=0)
    low, high = actor.action_low.numpy(), actor.action_high.numpy()
    assert np.all(got >= low - 1e-6) and np.all(got <= high + 1e-6)
    assert np.ptp(got, axis=0).min() > 0.1 * (high - low).min()  # not a constant: the states reach the weights
    assert meta["env"] == env_id and meta["max_episode_steps"] == 123
    assert (meta["state_dim"], meta["action_dim"]) == (state_dim, action_dim)
    np.testing.assert_array_equal(meta["action_low"], low)
    np.testing.assert_array_equal(meta["action_high"], high)


def test_export_leaves_the_actor_trainable(tmp_path: Path) -> None:
    """jit.save traces the actor; the layer itself stays an ordinary dynamic-graph layer in training mode."""
    actor, _ = _actor_for("asymmetric")
    export_actor(actor, tmp_path / "actor")
    assert actor.training
    loss = actor(paddle.ones([4, 5])).sum()
    loss.backward()
    assert actor.fcs[0].weight.grad is not None


def test_exported_prefix_names_an_export_by_prefix_or_any_of_its_files(tmp_path: Path) -> None:
    actor, _ = _actor_for("asymmetric")
    export_actor(actor, tmp_path / "m")
    prefix = str(tmp_path / "m")
    for path in (prefix, prefix + ".json", prefix + PARAMS_SUFFIX, prefix + META_SUFFIX):
        assert exported_prefix(path) == prefix, path
    assert exported_prefix(str(tmp_path)) is None  # a directory is a run directory
    assert exported_prefix(str(tmp_path / "checkpoint.pdckpt")) is None
    assert exported_prefix(str(tmp_path / "ddpg-actor3.pdparams")) is None


@pytest.fixture(scope="module")
def exported(base_run: TrainedRun, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The shared tiny Pendulum run exported by the CLI: (prefix, the CLI's JSON line)."""
    prefix = tmp_path_factory.mktemp("exported") / "actor"
    result = run_cli("export", "--checkpoint", "model/base", "--output", str(prefix), cwd=base_run.root)
    assert result.returncode == 0, result.stderr
    return prefix, last_json(result.stdout)


def test_export_cli_writes_program_weights_and_meta(exported: tuple[Path, dict]) -> None:
    """The JSON line lists exactly the files written; the meta keeps the run's env and its 50-step limit."""
    prefix, printed = exported
    files = sorted(printed["files"])
    assert files == sorted(str(p) for p in prefix.parent.iterdir())
    assert files == sorted(str(prefix) + s for s in (".json", PARAMS_SUFFIX, META_SUFFIX))  # Paddle 3 (PIR)
    meta = json.loads(Path(str(prefix) + META_SUFFIX).read_text())
    assert (meta["env"], meta["max_episode_steps"]) == ("Pendulum-v1", 50) == (printed["env"],
                                                                               printed["max_episode_steps"])


@pytest.mark.parametrize("suffix", ["", ".json"])
def test_evaluating_the_export_gives_the_checkpoints_returns(base_run: TrainedRun, exported: tuple[Path, dict],
                                                             suffix: str) -> None:
    """Same seed and episodes: the exported program scores what the checkpoint scores, episode for episode,
    which needs the same actions and the run's 50-step limit (Pendulum's own limit is 200)."""
    prefix, _ = exported
    from_checkpoint = run_cli("evaluate", "--checkpoint", "model/base", *EVAL_ARGS, cwd=base_run.root)
    from_export = run_cli("evaluate", "--checkpoint", str(prefix) + suffix, *EVAL_ARGS, cwd=base_run.root)
    assert from_checkpoint.returncode == 0, from_checkpoint.stderr
    assert from_export.returncode == 0, from_export.stderr
    expected, got = last_json(from_checkpoint.stdout), last_json(from_export.stdout)
    assert got["episodes"] == 3 and got["returns"] == expected["returns"]
    assert got["mean_return"] == pytest.approx(expected["mean_return"], rel=1e-9)
    assert -16.3 * 50 <= got["mean_return"] <= 0  # 50-step episodes: Pendulum's reward is in [-16.3, 0] per step


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


# damage done to a copy of the export, extra evaluate arguments, text the one error line must contain
DAMAGE = {
    "truncated weights": (lambda p: _truncate(Path(str(p) + PARAMS_SUFFIX)), [], "corrupt or truncated"),
    "garbage program": (lambda p: Path(str(p) + ".json").write_text("not a program"), [], "corrupt"),
    "truncated program": (lambda p: _truncate(Path(str(p) + ".json")), [], "corrupt"),
    "missing weights": (lambda p: Path(str(p) + PARAMS_SUFFIX).unlink(), [], PARAMS_SUFFIX),
    "missing program": (lambda p: Path(str(p) + ".json").unlink(), [], "incomplete"),
    "garbage meta": (lambda p: Path(str(p) + META_SUFFIX).write_text("{"), [], META_SUFFIX),
    "missing meta": (lambda p: Path(str(p) + META_SUFFIX).unlink(), [], META_SUFFIX),
    "env of other sizes": (lambda p: None, ["--env", "MountainCarContinuous-v0"], "MountainCarContinuous-v0"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_export_is_one_usage_error_line(exported: tuple[Path, dict], tmp_path: Path, case: str) -> None:
    damage, args, needle = DAMAGE[case]
    prefix = tmp_path / "actor"
    for f in exported[0].parent.iterdir():
        shutil.copy(f, tmp_path / f.name)
    damage(prefix)
    result = run_cli("evaluate", "--checkpoint", str(prefix) + ".json", "--episodes", "1", *args, cwd=tmp_path)
    assert_usage_error(result, needle)


def test_missing_export_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not found"):
        load_policy(tmp_path / "nothing")


def test_export_cli_usage_errors(base_run: TrainedRun, exported: tuple[Path, dict], tmp_path: Path) -> None:
    """A missing checkpoint, an output path that cannot be written (under a file, or a name too long), and an
    export given as the checkpoint are one line each with status 2."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    for args, needle in ((["--checkpoint", "model/nothing", "--output", str(tmp_path / "a")], "model/nothing"),
                         (["--checkpoint", "model/base", "--output", str(blocker / "a")], "cannot write"),
                         (["--checkpoint", str(exported[0]), "--output", str(tmp_path / "b")], "exported model"),
                         (["--checkpoint", "model/base", "--output", str(tmp_path / ("c" * 300) / "a")],
                          "File name too long")):
        assert_usage_error(run_cli("export", *args, cwd=base_run.root), needle)
    assert [p.name for p in tmp_path.iterdir()] == ["file"]  # no directory made for an export that failed


# Agents as training builds them: the exported program is the same Actor's whatever the algorithm, the widths,
# the number of hidden layers, the bounds of each dimension or the tanh penalty.
AGENTS = {
    "ddpg, one hidden layer": (3, [-2.0], [2.0], Config(algo="ddpg", actor_hidden=(7,))),
    "td3, three hidden layers, tanh penalty": (5, [-1.0, 0.0, 2.0], [3.0, 1.0, 5.0],
                                               Config(algo="td3", actor_hidden=(64, 32, 16), tanh_penalty=0.1)),
    "ddpg, the tutorial's sizes": (17, [-1.0] * 6, [1.0] * 6, Config()),
}


@pytest.mark.parametrize("case", list(AGENTS))
def test_every_actor_exports_to_a_program_that_passes_the_check(tmp_path: Path, case: str) -> None:
    """load_policy checks the program against an actor's ops before Paddle reads it: a real export passes
    and acts as the agent's actor."""
    state_dim, low, high, config = AGENTS[case]
    paddle.seed(5)
    actor = DDPG(state_dim, len(low), low, high, config).actor
    export_actor(actor, tmp_path / "actor")
    states = np.random.default_rng(1).normal(0.0, 2.0, (32, state_dim)).astype(np.float32)
    with paddle.no_grad():
        expected = actor(paddle.to_tensor(states)).numpy()
    np.testing.assert_allclose(load_policy(tmp_path / "actor").predict(states), expected, atol=1e-6, rtol=0)


def _ops(prefix: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    program = json.loads(Path(f"{prefix}.json").read_text())
    return program, program["program"]["regions"][0]["blocks"][0]["ops"]


def _write_weights(marker: Path) -> Callable[[Path], None]:
    """The payload: ops that gather the parameters and save them to `marker`, Paddle's own file-writing op."""
    def doctor(prefix: Path) -> None:
        program, ops = _ops(prefix)
        parameters = [op["O"] for op in ops if op["#"] == "p"]
        gathered = {"%": 1000, "TT": {"#": "0.t_vec", "D": [p["TT"] for p in parameters]}}
        ops[-1:-1] = [
            {"#": "0.combine", "A": [], "I": [{"%": p["%"]} for p in parameters], "O": [gathered]},
            {"#": "1.save_combine", "I": [{"%": 1000}], "O": [{"%": 1001, "TT": {"#": "NULL"}}],
             "A": [{"AT": {"#": "0.a_str", "D": str(marker)}, "N": "file_path"},
                   *({"AT": {"#": "0.a_bool", "D": flag}, "N": name} for name, flag in
                     (("overwrite", True), ("save_as_fp16", False), ("save_to_memory", False)))]}]
        Path(f"{prefix}.json").write_text(json.dumps(program))
    return doctor


def _edit(change: Callable[[list[dict[str, Any]]], None]) -> Callable[[Path], None]:
    def doctor(prefix: Path) -> None:
        program, ops = _ops(prefix)
        change(ops)
        Path(f"{prefix}.json").write_text(json.dumps(program))
    return doctor


def _op(ops: list[dict[str, Any]], name: str, index: int = 0) -> dict[str, Any]:
    return [op for op in ops if op["#"] == name][index]


def _output_before_the_tanh(ops: list[dict[str, Any]]) -> None:
    _op(ops, "1.fetch")["I"] = [{"%": _op(ops, "1.matmul", -1)["O"][0]["%"]}]


def _text(pattern: str, replacement: str) -> Callable[[Path], None]:
    def doctor(prefix: Path) -> None:
        program = Path(f"{prefix}.json")
        program.write_text(re.sub(pattern, replacement, program.read_text(), count=1))
    return doctor


# a doctored program -> text the one error line must contain
DOCTORED = {
    "an input naming no value": (_edit(lambda ops: _op(ops, "1.matmul")["I"][0].update({"%": 999})),
                                 "inputs made by earlier ops"),
    "the output taken before the tanh": (_edit(_output_before_the_tanh), "does not take the value of the op before"),
    "a tanh for a relu": (_edit(lambda ops: _op(ops, "1.relu").update({"#": "1.tanh"})), "not in an actor's order"),
    "a parameter larger than the weights": (_edit(lambda ops: _op(ops, "p")["O"]["TT"]["D"].__setitem__(
        1, [1 << 20, 1 << 20])), "more than its weights file holds"),
    "an attribute of another type": (_edit(lambda ops: _op(ops, "1.fetch")["A"][1]["AT"].update(
        {"#": "0.a_str", "D": "x"})), "attribute col"),
    "a key given twice": (_text(r'"magic": ?"pir"', '"magic": "pir", "magic": "pir"'), "twice"),
    "NaN": (_text(r'"version": ?\d+', '"version": NaN'), "NaN"),
    "too large": (lambda p: Path(f"{p}.json").write_bytes(b" " * (PROGRAM_LIMIT + 1)), "larger than"),
}


@pytest.fixture(scope="module")
def small_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real export of a small Pendulum-sized actor; tests doctor copies of it."""
    paddle.seed(2)
    prefix = tmp_path_factory.mktemp("small_export") / "actor"
    export_actor(Actor(3, 1, [-2.0], [2.0], hidden=(8,)), prefix, "Pendulum-v1", 50)
    return prefix


def _copy(export: Path, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for f in export.parent.iterdir():
        shutil.copy(f, directory / f.name)
    return directory / export.name


def test_a_program_that_writes_a_file_is_refused_before_it_runs(small_export: Path, tmp_path: Path) -> None:
    """The doctored export of issue 27 (its parameters saved to a file of its choosing, which version 0.2's
    loader wrote): evaluate refuses it in one line naming the op, status 2, and nothing is written."""
    marker = tmp_path / "marker"
    prefix = _copy(small_export, tmp_path / "shared")
    _write_weights(marker)(prefix)
    with pytest.raises(UsageError, match="the op '0.combine', which an exported actor does not use"):
        load_policy(prefix)
    result = run_cli("evaluate", "--checkpoint", str(prefix), "--episodes", "1", cwd=tmp_path)
    assert_usage_error(result, "actor.json is not an exported actor's program", "'0.combine'")
    assert not marker.exists()


@pytest.mark.parametrize("case", list(DOCTORED))
def test_a_doctored_program_is_one_line(small_export: Path, tmp_path: Path, case: str) -> None:
    doctor, needle = DOCTORED[case]
    prefix = _copy(small_export, tmp_path)
    doctor(prefix)
    assert Path(f"{prefix}.json").read_bytes() != Path(f"{small_export}.json").read_bytes()
    with pytest.raises(UsageError, match=needle) as refused:
        load_policy(prefix)
    assert "\n" not in str(refused.value)


def test_a_program_beside_the_export_is_never_read(small_export: Path, tmp_path: Path) -> None:
    """paddle.jit.load reads every PREFIX.<name>.json beside PREFIX.json as another method, unchecked; the
    export is loaded from a private copy of its own two files, so such a file is never read."""
    prefix = _copy(small_export, tmp_path)
    marker = tmp_path / "marker"
    shutil.copy(f"{prefix}.json", f"{prefix}.forward2.json")
    _write_weights(marker)(Path(f"{prefix}.forward2"))
    Path(f"{prefix}.other.json").write_text("not a program")  # 0.2's loader failed on this one
    states = np.random.default_rng(0).normal(0.0, 1.0, (16, 3)).astype(np.float32)
    np.testing.assert_array_equal(load_policy(prefix).predict(states), load_policy(small_export).predict(states))
    assert not marker.exists()


def _full_disk(after: Callable[[str], None]) -> Callable[..., None]:
    """paddle.jit.save as it behaves on a disk that fills: it writes, then `after(path)` (raise, or cut a file
    short, which Paddle does without a word)."""
    save = paddle.jit.save

    def save_on_a_full_disk(layer: Any, path: str, **kwargs: Any) -> None:
        save(layer, path, **kwargs)
        after(path)
    return save_on_a_full_disk


def _no_space(path: str) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _cut_short(path: str) -> None:
    weights = Path(path + PARAMS_SUFFIX)
    weights.write_bytes(weights.read_bytes()[:-100])


@pytest.mark.parametrize("after, needle", [(_no_space, "No space left on device"), (_cut_short, "does not load back")])
def test_a_full_disk_leaves_no_directory_and_the_earlier_export_intact(base_run: TrainedRun, small_export: Path,
                                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                        after: Callable[[str], None],
                                                                        needle: str) -> None:
    """Status 1 and one line; an export into new directories leaves none of them, one over an earlier export
    leaves it as it was."""
    earlier = _copy(small_export, tmp_path / "earlier")
    before = snapshot(tmp_path)
    monkeypatch.setattr(paddle.jit, "save", _full_disk(after))
    actor = Actor(3, 1, [-2.0], [2.0], hidden=(8,))
    with pytest.raises(SaveError, match=needle):
        export_actor(actor, tmp_path / "new" / "dirs" / "actor")
    for target in (earlier, tmp_path / "new" / "actor"):
        result = run_cli("export", "--checkpoint", str(base_run.run_dir), "--output", str(target), cwd=tmp_path)
        assert_usage_error(result, needle, "nothing was changed", status=1)
    assert snapshot(tmp_path) == before
