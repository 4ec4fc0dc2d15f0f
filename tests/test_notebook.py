"""The walkthrough notebook: it runs top to bottom in a real Jupyter kernel and shows what it promises, and the
committed copy carries a full run of the package's current code (the `notebook` tier: nbformat and nbclient come
with the [ci] extra).

The run is short: a few episodes are injected into the cell tagged "parameters" (papermill style) and the kernel
works in tmp_path, so its logs/ and model/ never land in the repository.
"""

from __future__ import annotations

import ast
import base64
import inspect
import io
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageSequence

pytestmark = pytest.mark.notebook

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


def read_notebook() -> Any:
    import nbformat  # here, not above: the default tier collects this file without the [ci] extra

    return nbformat.read(NOTEBOOK, as_version=4)


def parameters_cell(nb: Any) -> Any:
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"expected one cell tagged 'parameters', found {len(tagged)}"
    return tagged[0]


def outputs(nb: Any, mime: str) -> list[str]:
    return [o.data[mime] for c in nb.cells if c.cell_type == "code" for o in c.outputs if mime in o.get("data", {})]


def stdout(nb: Any) -> str:
    return "".join(o.text for c in nb.cells if c.cell_type == "code" for o in c.outputs
                   if o.output_type == "stream" and o.name == "stdout")


def test_notebook_runs_a_short_training_and_shows_its_results(tmp_path: Path) -> None:
    nb = read_notebook()
    parameters_cell(nb).source = SHORT_RUN
    from nbclient import NotebookClient  # here, as nbformat in read_notebook

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
    nb = read_notebook()
    assert re.search(r"^EPISODES = 200\b", parameters_cell(nb).source, re.M)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "notebook not executed top to bottom"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    assert "for 200 episodes (40000 env steps" in stdout(nb)
    assert len(outputs(nb, "image/gif")) == 2
    # The notebook imports the package and shows its source; it never defines its own copies.
    assert not [c.source for c in code if re.search(r"^\s*class \w+", c.source, re.M)]
    assert NOTEBOOK.stat().st_size < 3 * 1024 * 1024


def package_names(nb: Any) -> dict[str, Any]:
    """The package's names as the notebook imports them."""
    namespace: dict[str, Any] = {}
    for cell in nb.cells:
        if cell.cell_type == "code":
            imports = [node for node in ast.parse(cell.source).body
                       if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("paddle_ddpg")]
            exec(compile(ast.Module(imports, type_ignores=[]), NOTEBOOK.name, "exec"), namespace)
    return namespace


def code_of(source: str) -> str:
    """What runs in `source` (a function's or class's text, indented as in its module): its syntax tree
    without docstrings, comments or layout."""
    tree = ast.parse(textwrap.dedent(source))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.FunctionDef, ast.ClassDef)) and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


def test_committed_notebook_shows_the_current_package_code() -> None:
    """The `show(...)` cells print inspect.getsource: committed outputs whose code (docstrings and comments
    aside) differs from the package's mean the code changed after the notebook was last executed. Re-run it
    in place (about 2 minutes):
    cd notebooks && jupyter nbconvert --to notebook --execute --inplace ddpg_pendulum.ipynb && rm -rf logs model
    """
    nb = read_notebook()
    names = package_names(nb)
    shown = 0
    for cell in nb.cells:
        calls = re.findall(r"^show\(([\w.]+)\)$", cell.source, re.M) if cell.cell_type == "code" else []
        if not calls:
            continue
        printed = "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")
        sources = [inspect.getsource(eval(name, names)) for name in calls]
        # each object's printed text starts with its first line (a signature or decorator) and runs to the next
        starts = []
        for source in sources:
            first = source.splitlines(keepends=True)[0]
            starts.append(printed.find(first, starts[-1] + 1 if starts else 0))
        assert -1 not in starts, f"stale output of {', '.join(calls)}: re-execute the notebook"
        for name, source, start, end in zip(calls, sources, starts, [*starts[1:], len(printed)]):
            assert code_of(printed[start:end]) == code_of(source), f"stale output of {name}: re-execute the notebook"
        shown += len(calls)
    assert shown >= 10
