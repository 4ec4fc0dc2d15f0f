"""Watching a trained policy: its noise-free episodes as a small GIF or MP4 clip, or live in a window.

`python -m paddle_ddpg.evaluate --checkpoint PATH --record out.gif` and the notebook's early and late
animations both come through here. A clip stays small the way the notebook's always did: every `every`-th
frame, downscaled to fit in `size` x `size` pixels, and for a GIF one palette shared by every frame. GIFs are
written with Pillow (which VisualDL already needs); MP4 needs imageio-ffmpeg (the `[record]` extra).
"""

from __future__ import annotations

import io
import math
import os
import sys
import tempfile
from pathlib import Path

import gymnasium as gym
import numpy as np
from PIL import Image

from paddle_ddpg.config import UsageError, error_summary
from paddle_ddpg.device import require_memory
from paddle_ddpg.env import evaluate
from paddle_ddpg.files import atomic_write, temporary
from paddle_ddpg.policy import Policy

FORMATS = (".gif", ".mp4")
DEFAULT_SIZE = 160  # pixels on the longer side: the notebook's animations
DEFAULT_EVERY = 2  # keep every 2nd frame: Pendulum at 10 frames per second, still smooth
GIF_COLOURS = 32  # one palette for the whole clip; enough for gymnasium's flat-coloured scenes
PALETTE_SAMPLES = 16  # frames, spread over the clip, that the palette is chosen from
# GIF delays are whole hundredths of a second, and browsers play delays under 2 of them at 10: a GIF frame
# must last at least 20 ms to play at the speed it says.
GIF_MIN_FRAME_MS = 20
FALLBACK_FPS = 30  # gymnasium's own video recorder assumes this for an env that declares no render_fps


def require_display() -> None:
    """`--render` opens a window; on Linux that needs an X or Wayland display, which servers and containers
    lack, and the renderers' own errors there are several lines of C library complaints."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise UsageError("--render needs a display and none is set (DISPLAY, WAYLAND_DISPLAY); record the episodes "
                         "with --record out.gif instead")


def require_mp4_writer() -> None:
    """MP4 is written by ffmpeg through imageio-ffmpeg, an optional dependency: say how to get it."""
    try:
        import imageio_ffmpeg

        imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        raise UsageError("recording .mp4 needs imageio-ffmpeg (pip install 'paddle_ddpg[record]'); or record a .gif"
                         ) from None


def real_time_fps(env: gym.Env) -> float:
    """Frames per second of episode time, so that a clip of every step plays at real speed: 1 / dt where the
    env declares its time step (MuJoCo's envs, Pendulum), else its metadata's render_fps. Pendulum declares
    render_fps 30 for steps of 0.05 s, which would play it 1.5 times too fast."""
    dt = getattr(env.unwrapped, "dt", None)
    if isinstance(dt, (int, float)) and dt > 0:
        return 1.0 / dt
    return float(env.metadata.get("render_fps") or FALLBACK_FPS)


def fitted_size(height: int, width: int, size: int, even: bool = False) -> tuple[int, int]:
    """(width, height) of a frame shrunk, never enlarged, to fit in `size` x `size`, its aspect kept; `even`
    rounds both down to even numbers, which MP4's 4:2:0 colour subsampling needs."""
    scale = min(1.0, size / max(height, width))
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    return (max(2, w - w % 2), max(2, h - h % 2)) if even else (w, h)


class Clip:
    """Frames of noise-free episodes on their way to `path` (.gif or .mp4).

    Everything that can be wrong with the request (the format, a missing MP4 writer, an unwritable place, an
    env that cannot render, frames beyond the machine's memory) is a UsageError before any episode runs: the
    constructor checks the file, `start(env, episodes)` the env.
    """

    def __init__(self, path: str | Path, size: int = DEFAULT_SIZE, every: int | None = None) -> None:
        """`every` None: DEFAULT_EVERY, or more where a GIF's frames would otherwise be too short to play
        at real speed (MuJoCo's Hopper steps 125 times a second)."""
        self.path = Path(path)
        self.format = self.path.suffix.lower()
        if self.format not in FORMATS:
            raise UsageError(f"cannot record {path}: unknown clip format {self.format or '(no extension)'!r}; "
                             f"use {' or '.join(FORMATS)}")
        if size < 2:
            raise UsageError(f"record size must be at least 2 pixels, got {size}")
        if every is not None and every < 1:
            raise UsageError(f"record every must be >= 1 (every frame), got {every}")
        if self.format == ".mp4":
            require_mp4_writer()
        check_writable(self.path)
        self.size = size
        self.every = every or DEFAULT_EVERY
        self._every_given = every is not None
        self.fps = 0.0  # frames per second of episode time; start() reads it from the env
        self.frame_size = (0, 0)  # (width, height) of the kept frames; start() fits it to the env's renders
        self.frames: list[Image.Image] = []

    @property
    def frame_ms(self) -> float:
        """How long each kept frame shows, for the clip to play at real speed."""
        return 1000.0 * self.every / self.fps

    def start(self, env: gym.Env, episodes: int) -> None:
        """Render one frame of `env` (made with render_mode="rgb_array"), take its frame rate, settle the frame
        skip and check the clip's frames fit in memory: all before the first episode."""
        env_id = env.spec.id if env.spec else type(env.unwrapped).__name__
        try:
            env.reset(seed=0)  # a renderer draws the current state; each episode resets with its own seed
            frame = env.render()
        except Exception as exc:  # renderers fail in their own ways: pygame, OpenGL, MuJoCo
            hint = "; headless MuJoCo needs MUJOCO_GL=egl or osmesa" if "OpenGL" in str(exc) else ""
            raise UsageError(f"cannot render {env_id}: {error_summary(exc)}{hint}") from None
        if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3:
            raise UsageError(f"{env_id} renders no RGB frames (render_mode {env.render_mode!r}); a clip needs "
                             f"render_mode='rgb_array'")
        self.fps = real_time_fps(env)
        if self.format == ".gif" and self.frame_ms < GIF_MIN_FRAME_MS:
            fastest = math.ceil(GIF_MIN_FRAME_MS * self.fps / 1000)
            if self._every_given:
                raise UsageError(f"{env_id} runs {self.fps:g} steps a second: keeping every {self.every} makes GIF "
                                 f"frames of {self.frame_ms:.0f} ms, which players slow to 100 ms; keep every "
                                 f"{fastest} or more, or record an .mp4")
            self.every = fastest
        self.frame_size = width, height = fitted_size(frame.shape[0], frame.shape[1], self.size,
                                                      even=self.format == ".mp4")
        steps = env.spec.max_episode_steps if env.spec else None
        if steps:
            require_memory(episodes * math.ceil(steps / self.every) * width * height * 3,
                           f"a clip of {episodes} episodes of {steps} steps at {width}x{height}")

    def add(self, frame: np.ndarray) -> None:
        """Keep one rendered frame, downscaled now: the full-size renders never pile up."""
        self.frames.append(Image.fromarray(frame).resize(self.frame_size, Image.Resampling.LANCZOS))

    def save(self) -> None:
        """Write the clip (atomically: an interrupted save leaves no half file)."""
        if not self.frames:
            raise UsageError(f"no frames to record in {self.path}: no episode ran")
        data = (gif_bytes(self.frames, self.frame_ms) if self.format == ".gif"
                else mp4_bytes(self.frames, self.fps / self.every))
        atomic_write(self.path, lambda f: f.write(data))


def check_writable(path: Path) -> None:
    """Make and remove a temporary file beside `path`: the one test of writability that also holds for root,
    read-only mounts and full directories."""
    if path.is_dir():
        raise UsageError(f"cannot record to {path}: it is a directory")
    if not path.parent.is_dir():
        raise UsageError(f"cannot record to {path}: no directory {path.parent}")
    try:
        temporary(path).unlink()
    except OSError as exc:
        raise UsageError(f"cannot record to {path}: {exc.strerror or exc}") from None


def gif_bytes(frames: list[Image.Image], frame_ms: float) -> bytes:
    """An endlessly looping GIF, every frame on one palette chosen from frames across the clip: a shared palette
    is stored once, and with dithering off a still background stays the same bytes from frame to frame, which
    LZW compresses to almost nothing."""
    width, height = frames[0].size
    sample = frames[:: max(1, len(frames) // PALETTE_SAMPLES)]
    strip = Image.new("RGB", (width * len(sample), height))
    for i, frame in enumerate(sample):
        strip.paste(frame, (width * i, 0))
    # Maximum coverage keeps the few pixels of a small, distinct colour (Pendulum's black axle), which median cut
    # merges into their neighbours.
    palette = strip.quantize(colors=GIF_COLOURS, method=Image.Quantize.MAXCOVERAGE)
    indexed = [frame.quantize(palette=palette, dither=Image.Dither.NONE) for frame in frames]
    # Each delay is a whole 10 ms; rounding the running total, not each delay, keeps the clip's length exact.
    ends = np.round(np.arange(1, len(frames) + 1) * frame_ms / 10) * 10
    durations = np.diff(ends, prepend=0).astype(int).tolist()
    buffer = io.BytesIO()
    indexed[0].save(buffer, format="GIF", save_all=True, append_images=indexed[1:], loop=0, duration=durations)
    return buffer.getvalue()


def mp4_bytes(frames: list[Image.Image], fps: float) -> bytes:
    """An H.264 MP4 (what browsers and players take) through imageio-ffmpeg, which writes only to a named file."""
    import imageio_ffmpeg  # optional: require_mp4_writer has checked it is there

    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "clip.mp4")
        writer = imageio_ffmpeg.write_frames(path, frames[0].size, fps=fps, macro_block_size=2,
                                             ffmpeg_log_level="error")
        writer.send(None)  # starts ffmpeg
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
        writer.close()
        return Path(path).read_bytes()


def record_episodes(policy: Policy, path: str | Path, episodes: int = 1, seed: int = 0, size: int = DEFAULT_SIZE,
                    every: int | None = None) -> np.ndarray:
    """Write `episodes` noise-free episodes of `policy` to `path` (.gif or .mp4) and return their returns:
    the episodes `evaluate` runs with the same `seed`, on the env the policy was trained on."""
    clip = Clip(path, size, every)
    env = policy.make_env(render_mode="rgb_array")
    try:
        clip.start(env, episodes)
        returns = evaluate(policy.predict, env, episodes, seed, on_frame=clip.add, frame_every=clip.every)
    finally:
        env.close()
    clip.save()
    return returns
