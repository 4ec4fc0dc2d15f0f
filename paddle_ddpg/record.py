"""Watching a trained policy: its noise-free episodes as a small GIF (Pillow) or MP4 (imageio-ffmpeg, the
`[record]` extra) clip, or live in a window. `evaluate --record` and the notebook's animations come through here."""

from __future__ import annotations

import io
import math
import os
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
GIF_MIN_FRAME_MS = 20  # GIF delays are whole 10 ms, and browsers play delays under 20 ms at 100 ms
FALLBACK_FPS = 30  # gymnasium's own video recorder assumes this for an env that declares no render_fps


class Clip:
    """Every `every`-th frame (default DEFAULT_EVERY, or more where a GIF would play too slowly), fitted in `size`
    x `size`. Each mistake is a UsageError before any episode: __init__ checks the file, `start` the env."""

    def __init__(self, path: str | Path, size: int = DEFAULT_SIZE, every: int | None = None) -> None:
        self.path = Path(path)
        self.format = self.path.suffix.lower()
        for bad, message in (
                (self.format not in FORMATS, f"cannot record {path}: unknown clip format "
                                             f"{self.format or '(no extension)'!r}; use {' or '.join(FORMATS)}"),
                (size < 2, f"record size must be at least 2 pixels, got {size}"),
                (every is not None and every < 1, f"record every must be >= 1 (every frame), got {every}"),
                (self.path.is_dir(), f"cannot record to {path}: it is a directory"),
                (not self.path.parent.is_dir(), f"cannot record to {path}: no directory {self.path.parent}")):
            if bad:
                raise UsageError(message)
        if self.format == ".mp4":
            try:
                import imageio_ffmpeg  # optional
                imageio_ffmpeg.get_ffmpeg_exe()
            except (ImportError, RuntimeError):
                raise UsageError("recording .mp4 needs imageio-ffmpeg (pip install 'paddle_ddpg[record]'); or "
                                 "record a .gif") from None
        try:  # the one test of writability that also holds for root, read-only mounts and full directories
            temporary(self.path).unlink()
        except OSError as exc:
            raise UsageError(f"cannot record to {path}: {exc.strerror or exc}") from None
        self.size, self.every, self._every_given = size, every or DEFAULT_EVERY, every is not None
        self.fps = 0.0  # frames per second of episode time; start() reads it from the env
        self.frame_size = (0, 0)  # (width, height) of the kept frames; start() fits it to the env's renders
        self.frames: list[Image.Image] = []

    @property
    def frame_ms(self) -> float:  # how long each kept frame shows, for the clip to play at real speed
        return 1000.0 * self.every / self.fps

    def start(self, env: gym.Env, episodes: int) -> None:
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
        # Real speed: 1 / dt where the env declares its time step (Pendulum's render_fps 30 is for steps of 0.05 s)
        dt = getattr(env.unwrapped, "dt", None)
        self.fps = 1.0 / dt if isinstance(dt, (int, float)) and dt > 0 else float(
            env.metadata.get("render_fps") or FALLBACK_FPS)
        if self.format == ".gif" and self.frame_ms < GIF_MIN_FRAME_MS:
            fastest = math.ceil(GIF_MIN_FRAME_MS * self.fps / 1000)
            if self._every_given:
                raise UsageError(f"{env_id} runs {self.fps:g} steps a second: keeping every {self.every} makes GIF "
                                 f"frames of {self.frame_ms:.0f} ms, which players slow to 100 ms; keep every "
                                 f"{fastest} or more, or record an .mp4")
            self.every = fastest
        scale = min(1.0, self.size / max(frame.shape[:2]))  # shrunk, never enlarged; MP4's 4:2:0 needs even sizes
        w, h = (max(1, round(n * scale)) for n in (frame.shape[1], frame.shape[0]))
        self.frame_size = width, height = (max(2, w - w % 2), max(2, h - h % 2)) if self.format == ".mp4" else (w, h)
        if steps := env.spec.max_episode_steps if env.spec else None:
            require_memory(episodes * math.ceil(steps / self.every) * width * height * 3,
                           f"a clip of {episodes} episodes of {steps} steps at {width}x{height}")

    def add(self, frame: np.ndarray) -> None:  # downscaled now: the full-size renders never pile up
        self.frames.append(Image.fromarray(frame).resize(self.frame_size, Image.Resampling.LANCZOS))

    def save(self) -> None:
        if not self.frames:
            raise UsageError(f"no frames to record in {self.path}: no episode ran")
        data = gif_bytes(self.frames, self.frame_ms) if self.format == ".gif" else self._mp4_bytes()
        atomic_write(self.path, lambda f: f.write(data))

    def _mp4_bytes(self) -> bytes:
        import imageio_ffmpeg  # optional, checked by the constructor; it writes H.264 only to a named file
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "clip.mp4")
            writer = imageio_ffmpeg.write_frames(path, self.frame_size, fps=self.fps / self.every, macro_block_size=2,
                                                 ffmpeg_log_level="error")
            writer.send(None)  # starts ffmpeg
            for frame in self.frames:
                writer.send(np.ascontiguousarray(frame))
            writer.close()
            return Path(path).read_bytes()


def gif_bytes(frames: list[Image.Image], frame_ms: float) -> bytes:
    """An endlessly looping GIF on one palette chosen from frames across the clip: stored once, and with
    dithering off a still background stays the same bytes from frame to frame, which LZW all but removes."""
    strip = Image.fromarray(np.hstack([np.asarray(f) for f in frames[:: max(1, len(frames) // PALETTE_SAMPLES)]]))
    # Maximum coverage keeps the few pixels of a small, distinct colour (Pendulum's black axle) that median cut merges.
    palette = strip.quantize(colors=GIF_COLOURS, method=Image.Quantize.MAXCOVERAGE)
    indexed = [frame.quantize(palette=palette, dither=Image.Dither.NONE) for frame in frames]
    # Each delay is a whole 10 ms; rounding the running total, not each delay, keeps the clip's length exact.
    ends = np.round(np.arange(1, len(frames) + 1) * frame_ms / 10) * 10
    buffer = io.BytesIO()
    indexed[0].save(buffer, format="GIF", save_all=True, append_images=indexed[1:], loop=0,
                    duration=np.diff(ends, prepend=0).astype(int).tolist())
    return buffer.getvalue()


def record_episodes(policy: Policy, path: str | Path, episodes: int = 1, seed: int = 0, size: int = DEFAULT_SIZE,
                    every: int | None = None) -> np.ndarray:
    """Write the noise-free episodes `evaluate` runs with `seed` to `path` (.gif or .mp4); their returns."""
    clip = Clip(path, size, every)
    with policy.make_env(render_mode="rgb_array") as env:
        clip.start(env, episodes)
        returns = evaluate(policy.predict, env, episodes, seed, on_frame=clip.add, frame_every=clip.every)
    clip.save()
    return returns
