"""Recording and watching: `evaluate --record out.gif|out.mp4` writes the noise-free episodes it evaluates, frame
for frame as the env renders them; every mistake in the request is one line before any episode runs."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence

from conftest import TrainedRun, assert_usage_error, cli_env, last_json, run_cli
from paddle_ddpg.config import UsageError
from paddle_ddpg.env import EVAL_STREAM, episode_seed, make_env
from paddle_ddpg.env import evaluate
from paddle_ddpg.policy import Policy, load_policy
from paddle_ddpg.record import Clip, gif_bytes, record_episodes

STEPS = 50  # the shared run's episode length
FRAME_MS = 100  # Pendulum steps 0.05 s; every 2nd frame kept


def rendered_frames(policy: Policy, episodes: int, every: int, size: int) -> list[Image.Image]:
    """The evaluation episodes replayed here, step by step: the render of every `every`-th state an action is
    taken in, from each seeded reset on, downscaled with Lanczos to fit in size x size."""
    env = policy.make_env(render_mode="rgb_array")
    frames = []
    for i in range(episodes):
        state, _ = env.reset(seed=episode_seed(0, EVAL_STREAM, i))
        for step in range(STEPS):
            if step % every == 0:
                frames.append(Image.fromarray(env.render()).resize((size, size), Image.Resampling.LANCZOS))
            state = env.step(policy.predict(state))[0]
    env.close()
    return frames


def durations(gif: Image.Image) -> list[int]:
    return [frame.info["duration"] for frame in ImageSequence.Iterator(gif)]


@pytest.fixture(scope="module")
def recorded(base_run: TrainedRun, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("record") / "episodes.gif"
    # As on a server: no display and no desktop session, where a renderer looking for a screen complains.
    headless = {k: v for k, v in cli_env().items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "XDG_RUNTIME_DIR",
                                                                   "SDL_VIDEODRIVER")}
    result = run_cli("evaluate", "--checkpoint", str(base_run.run_dir), "--episodes", "2", "--record", str(out),
                     cwd=base_run.root, env=headless)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # nothing but the clip: no renderer's complaint about a missing display
    return out, last_json(result.stdout)


def test_recorded_gif_is_the_evaluated_episodes(base_run: TrainedRun, recorded: tuple[Path, dict]) -> None:
    """2 episodes of 50 steps, every 2nd frame: 50 frames of 100 ms (PIL merges identical neighbours into one
    longer frame), 160x160; its bytes are the encoding of the frames rendered here from the seeded resets; its
    first frame is the first reset's render up to the 32-colour palette; the returns are the run's evaluation's."""
    path, summary = recorded
    gif = Image.open(path)
    assert gif.format == "GIF" and gif.size == (160, 160)
    assert sum(durations(gif)) == 2 * (STEPS // 2) * FRAME_MS
    assert all(d % FRAME_MS == 0 for d in durations(gif)) and gif.n_frames <= 2 * STEPS // 2
    assert summary["mean_return"] == base_run.summary["final_eval_mean"]

    frames = rendered_frames(load_policy(base_run.run_dir), episodes=2, every=2, size=160)
    assert path.read_bytes() == gif_bytes(frames, FRAME_MS)
    gif.seek(0)
    first, expected = np.asarray(gif.convert("RGB"), dtype=float), np.asarray(frames[0], dtype=float)
    assert np.abs(first - expected).mean() < 0.5
    # ... and not any other frame's: the first step already moves the pendulum by pixels.
    assert np.abs(first - np.asarray(frames[1], dtype=float)).max() > 100


def test_record_episodes_from_python(base_run: TrainedRun, tmp_path: Path) -> None:
    """record_episodes (the notebook's call) writes the same clip for the same episodes and returns their
    returns; size and frame skip change the frames as asked."""
    policy = load_policy(base_run.run_dir)
    returns = record_episodes(policy, tmp_path / "one.gif", episodes=1, seed=0, size=64, every=5)
    env = policy.make_env()
    np.testing.assert_array_equal(returns, evaluate(policy.predict, env, 1, 0))
    env.close()
    gif = Image.open(tmp_path / "one.gif")
    assert gif.size == (64, 64) and sum(durations(gif)) == (STEPS // 5) * 5 * 50
    assert (tmp_path / "one.gif").read_bytes() == gif_bytes(rendered_frames(policy, 1, 5, 64), 250)


def test_recorded_mp4(base_run: TrainedRun, tmp_path: Path) -> None:
    """An .mp4 through imageio-ffmpeg: H.264 at 10 frames per second of episode time, 25 frames an episode,
    even sizes, the first frame the first reset's render up to the codec's loss."""
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    out = tmp_path / "episodes.mp4"
    result = run_cli("evaluate", "--checkpoint", str(base_run.run_dir), "--episodes", "2", "--record", str(out),
                     "--record-size", "121", cwd=base_run.root)
    assert result.returncode == 0, result.stderr
    reader = imageio_ffmpeg.read_frames(str(out))
    meta = next(reader)
    assert meta["codec"] == "h264" and meta["fps"] == 10.0 and meta["size"] == (120, 120)
    decoded = [np.frombuffer(f, np.uint8).reshape(120, 120, 3) for f in reader]
    assert len(decoded) == 2 * STEPS // 2
    expected = np.asarray(rendered_frames(load_policy(base_run.run_dir), 1, 2, 120)[0], dtype=float)
    assert np.abs(decoded[0] - expected).mean() < 3


def test_gif_frames_never_play_faster_than_players_allow(tmp_path: Path) -> None:
    """On an env stepping 200 times a second, GIF frames of 10 ms would play at 100 ms: by default more frames
    are skipped (20 ms frames), and an explicit skip that is too small is refused before any episode."""
    env = make_env("Pendulum-v1", render_mode="rgb_array")
    env.unwrapped.dt = 0.005
    clip = Clip(tmp_path / "fast.gif")
    clip.start(env, 1)
    assert (clip.every, clip.frame_ms) == (4, 20.0)
    with pytest.raises(UsageError, match="keep every 4 or more, or record an .mp4"):
        Clip(tmp_path / "fast.gif", every=2).start(env, 1)
    env.close()
    assert not (tmp_path / "fast.gif").exists()


@pytest.mark.parametrize("target, needle", [
    ("out.avi", "unknown clip format '.avi'; use .gif or .mp4"),
    ("out", "unknown clip format '(no extension)'"),
    ("missing/out.gif", "no directory missing"),
    ("clips.gif", "cannot record to clips.gif: it is a directory"),
    ("model/base/config.json/out.gif", "no directory model/base/config.json"),
])
def test_record_errors_are_one_line_before_anything_runs(base_copy: TrainedRun, target: str, needle: str) -> None:
    """A wrong --record target is one line, exit 2: checked before the checkpoint is even read (a missing one
    is not what the error names) and so before any episode; nothing is written."""
    (base_copy.root / "clips.gif").mkdir()
    for checkpoint in ("model/base", "model/absent"):
        result = run_cli("evaluate", "--checkpoint", checkpoint, "--record", target, cwd=base_copy.root)
        assert_usage_error(result, needle)
    assert not [p for p in base_copy.root.rglob("*") if p.is_file() and p.suffix in (".gif", ".tmp")]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_record_to_a_read_only_directory(base_copy: TrainedRun) -> None:
    (base_copy.root / "locked").mkdir(mode=0o555)
    result = run_cli("evaluate", "--checkpoint", "model/base", "--record", "locked/out.gif", cwd=base_copy.root)
    assert_usage_error(result, "cannot record to locked/out.gif: Permission denied")


def test_mp4_without_its_writer_is_one_line(base_copy: TrainedRun, tmp_path: Path) -> None:
    """Where imageio-ffmpeg cannot be imported (a module of that name that fails to import stands first on the
    path), .mp4 is refused in one line naming the extra; a .gif still records."""
    (tmp_path / "blocked").mkdir()
    (tmp_path / "blocked" / "imageio_ffmpeg.py").write_text("raise ImportError('not installed')\n")
    env = {**cli_env(), "PYTHONPATH": os.pathsep.join([str(tmp_path / "blocked"), *sys.path])}
    result = run_cli("evaluate", "--checkpoint", "model/base", "--record", "out.mp4", cwd=base_copy.root, env=env)
    assert_usage_error(result, "recording .mp4 needs imageio-ffmpeg", "paddle_ddpg[record]")
    assert not (base_copy.root / "out.mp4").exists()


def test_render_without_a_display_is_one_line(base_copy: TrainedRun) -> None:
    """--render needs a window; with no DISPLAY or WAYLAND_DISPLAY it says so instead of failing in the renderer.
    It cannot be combined with --record."""
    env = {k: v for k, v in cli_env().items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = run_cli("evaluate", "--checkpoint", "model/base", "--render", cwd=base_copy.root, env=env)
    assert_usage_error(result, "--render needs a display", "--record out.gif")
    both = run_cli("evaluate", "--checkpoint", "model/base", "--render", "--record", "out.gif", cwd=base_copy.root)
    assert_usage_error(both, "--render and --record cannot be combined")


def test_gif_bytes_keep_the_clip_length_exact() -> None:
    """GIF delays are whole 10 ms; frames of 33.3 ms (30 fps) get 30 and 40 ms so that 30 frames last 1 s."""
    frames = [Image.new("RGB", (8, 8), (i * 8, 0, 0)) for i in range(30)]
    gif = Image.open(io.BytesIO(gif_bytes(frames, 1000 / 30)))
    assert gif.n_frames == 30 and sum(durations(gif)) == 1000 and set(durations(gif)) == {30, 40}
