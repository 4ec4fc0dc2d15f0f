"""The walkthrough notebook: it runs top to bottom in a real Jupyter kernel and shows what it promises.

The run is short: a few episodes are injected into the cell tagged "parameters" (papermill style) and the kernel
works in tmp_path, so its logs/ and model/ never land in the repository.
"""

from __future__ import annotations

import base64
import inspect
import io
import re
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from PIL import Image, ImageSequence

import paddle_ddpg
from paddle_ddpg.train import Trainer

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "ddpg_pendulum.ipynb"

# 8 episodes = 1600 steps: past learning_starts (1280), so a few hundred learn steps really run.
SHORT_RUN = """\
EPISODES = 8
SEED = 0
EVAL_EPISODES = 3
RUN_NAME = "short"
LOGDIR = "logs"
MODEL_DIR = "model"
"""


def parameters_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"expected one cell tagged 'parameters', found {len(tagged)}"
    return tagged[0]


def outputs(nb: nbformat.NotebookNode, mime: str) -> list[str]:
    return [o.data[mime] for c in nb.cells if c.cell_type == "code" for o in c.outputs if mime in o.get("data", {})]


def stdout(nb: nbformat.NotebookNode) -> str:
    return "".join(o.text for c in nb.cells if c.cell_type == "code" for o in c.outputs
                   if o.output_type == "stream" and o.name == "stdout")


def test_notebook_runs_a_short_training_and_shows_its_results(tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    parameters_cell(nb).source = SHORT_RUN
    # Raises CellExecutionError, with the cell and its traceback, if any cell fails.
    NotebookClient(nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(tmp_path)}}).execute()

    # The run trained through paddle_ddpg.train.train and left its files under the kernel's cwd.
    run_dir = tmp_path / "model" / "short"
    assert (run_dir / "checkpoint.pdckpt").is_file()
    assert (run_dir / "ddpg-actor0.pdparams").is_file() and (run_dir / "ddpg-actor7.pdparams").is_file()
    assert list((tmp_path / "logs" / "short").glob("vdlrecords.*.log"))
    assert not (NOTEBOOK.parent / "model" / "short").exists()
    text = stdout(nb)
    assert "train begin!" in text and "Epoch:0, episode reward is" in text
    assert re.search(r"for 8 episodes \(1600 env steps, 320 learn steps\)", text), text

    # Two animations, early and late: 200 steps of 0.05 s, every 2nd frame kept at 100 ms, so 10 s at real speed
    # (PIL merges identical consecutive frames, as when the pendulum rests, into one longer frame).
    gifs = [Image.open(io.BytesIO(base64.b64decode(g))) for g in outputs(nb, "image/gif")]
    assert len(gifs) == 2
    for gif in gifs:
        assert gif.format == "GIF" and gif.size == (160, 160) and gif.n_frames > 10
        assert sum(frame.info["duration"] for frame in ImageSequence.Iterator(gif)) == 10_000

    # The reward curve read back from VisualDL, and the evaluation table with one row per episode.
    assert outputs(nb, "image/png")
    table = next(t for t in outputs(nb, "text/markdown") if "平均 mean" in t)
    rows = [line for line in table.splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(rows) == 3
    returns = [float(x) for row in rows for x in row.strip("| ").split(" | ")[1:]]
    assert all(-16.3 * 200 <= r <= 0 for r in returns)  # Pendulum's per-step reward lies in [-16.27, 0]
    # The notebook asserts its own evaluation equals the trainer's final one; this line follows that assert.
    assert "matches the trainer's final evaluation" in text


def test_committed_notebook_carries_a_full_default_run() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert re.search(r"^EPISODES = 200\b", parameters_cell(nb).source, re.M)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "notebook not executed top to bottom"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    assert "for 200 episodes (40000 env steps" in stdout(nb)
    assert len(outputs(nb, "image/gif")) == 2
    # The notebook imports the package and shows its source; it never defines its own copies.
    assert not [c.source for c in code if re.search(r"^\s*class \w+", c.source, re.M)]
    assert NOTEBOOK.stat().st_size < 3 * 1024 * 1024


def test_committed_notebook_shows_the_current_package_source() -> None:
    """The `show(...)` cells print inspect.getsource; committed outputs that no longer match mean the package
    changed after the notebook was last executed. Re-run it in place (about 2 minutes):
    cd notebooks && jupyter nbconvert --to notebook --execute --inplace ddpg_pendulum.ipynb && rm -rf logs model
    """
    nb = nbformat.read(NOTEBOOK, as_version=4)
    names = {**vars(paddle_ddpg), "Trainer": Trainer}
    shown = 0
    for cell in nb.cells:
        calls = re.findall(r"^show\(([\w.]+)\)$", cell.source, re.M) if cell.cell_type == "code" else []
        if not calls:
            continue
        printed = "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")
        expected = "".join(inspect.getsource(eval(name, names)) + "\n" for name in calls)
        assert printed == expected, f"stale output of {', '.join(calls)}: re-execute the notebook"
        shown += len(calls)
    assert shown >= 10


ENGINE_WORDS = re.compile(r"_C_ops|paddle\.base|kernel|fused|Trace\b|matmul_grad|hardtanh|stanh|sgd_|merged_adam|"
                          r"share_flat|get_tensor|\._slice\(|_share_buffer_to|MergedAdam")


def test_the_notebook_teaches_the_algorithm_not_the_engine() -> None:
    """What a learner reads next to the tutorial, the markdown and every shown source, names no kernel, private
    API or detail of the fast engine; one sentence names the engine and the test that holds it equal."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    shown = "".join(o.text for c in nb.cells if c.cell_type == "code" and re.search(r"^show\(", c.source, re.M)
                    for o in c.outputs if o.output_type == "stream")
    assert "def update(" in shown and "def soft_update(" in shown and "def critic_step(" in shown
    assert not ENGINE_WORDS.findall(markdown + shown), ENGINE_WORDS.findall(markdown + shown)
    assert markdown.count("paddle_ddpg.fast") == 1 and "tests/test_update_equivalence.py" in markdown
