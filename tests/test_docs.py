"""Every fenced block of the README, docs/ and bench/README.md runs somewhere, as written
from the repository root: here (a command's options against its parser, the document
example against the schema, the stand-ins' commands), or in the test or CI step named
for it in ``RUN_BY``. A block in neither place fails ``test_every_block_runs_somewhere``.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from analysis.results.document import from_json
from analysis.results.outputs import outputs_in
from analysis.results.products import fit_endings

from .helpers import MIRROR_2020, ROOT, checkout_in

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench/README.md"]


@dataclass(frozen=True)
class Block:
    page: str  # relative to the repository root
    line: int  # of the opening fence
    lang: str
    text: str
    title: str = ""  # ```bash title="…": a step CI runs whole through .ci/doc_blocks.py

    @property
    def first(self) -> str:
        """What names the block: its first line that is not a comment."""
        lines = self.text.splitlines()
        return next((line for line in lines if not line.startswith("#")), lines[0])

    def commands(self) -> list[str]:
        """Its command lines: continuations joined, comments and prompts' output dropped."""
        joined = re.sub(r"\\\n\s*", "", self.text)
        lines = [line.split("  #")[0].strip() for line in joined.splitlines()]
        return [line for line in lines if line and not line.startswith("#")]


def blocks() -> list[Block]:
    found = []
    for page in PAGES:
        text = page.read_text("utf-8")
        fence = r'^```(\w*)(?: title="([^"]*)")?\n(.*?)^```'
        for match in re.finditer(fence, text, flags=re.S | re.M):
            line = text.count("\n", 0, match.start()) + 1
            page_name = str(page.relative_to(ROOT))
            found.append(Block(page_name, line, match[1], match[3], match[2] or ""))
    return found


CHECKPOINT_GUIDE = "tests/test_checkpoint.py::test_the_user_guide_commands_run_as_written"

#: The blocks run by another test or a CI step, by page and first line: where.
RUN_BY: dict[tuple[str, str], str] = {
    ("README.md", "python3.11 -m venv .venv && .venv/bin/pip install -c constraints.txt "
     "-e '.[test]' \\"): (
        "tests/test_readme.py::test_the_first_command_runs_the_main_job"
    ),
    ("README.md", ".venv/bin/hzz generate --out standins        # ZZ* and the four Higgs "
     "samples, about 20 s"): "tests/test_readme.py::test_the_quick_start_shows_the_higgs_peak",
    ("README.md", "import matplotlib.pyplot as plt"): (
        "tests/test_notebook.py::test_the_readme_notebook_example_gives_the_published_numbers"
    ),
    ("README.md", "docker build -f Dockerfile.scheduler -t hzz-scheduler:latest ."): (
        ".ci/swarm.sh"
    ),
    ("docs/deployment.md", "docker swarm init                                   # once, if "
     "this is not yet a swarm"): ".ci/swarm.sh",
    ("docs/deployment.md", 'docker swarm init --advertise-addr "$MANAGER_IP" --listen-addr '
     '"$MANAGER_IP:2377" \\'): ".ci/swarm-nodes.sh",
    ("docs/deployment.md", 'docker swarm join --token "$TOKEN" --advertise-addr "$NODE_IP" \\'): (
        ".ci/swarm-nodes.sh"
    ),
    ("docs/deployment.md", "for image in hzz-scheduler hzz-worker; do"): ".ci/swarm-nodes.sh",
    ("docs/deployment.md", "docker node ls"): ".ci/swarm-nodes.sh",
    ("docs/deployment.md", "hzz cluster up --workers 3 [--dir .hzz-cluster] [--plots plots] "
     "[--broker URL]"): "tests/test_localstack.py::"
    "test_one_and_three_workers_give_identical_histograms_and_the_plotter_draws",
    ("docs/fit.md", "hzz run --data ../shared/data/atlas-opendata-2020/4lep --data STANDINS "
     "--fit   # run + fit"): "tests/test_fit.py::test_hzz_run_fit_end_to_end",
    ("docs/notebook.md", "import matplotlib.pyplot as plt"): (
        "tests/test_notebook.py::test_the_notebook_page_gives_the_published_numbers"
    ),
    ("docs/notebook.md", "import dask"): (
        "tests/test_notebook.py::test_the_notebook_page_gives_the_published_numbers"
    ),
    ("docs/plotting-service.md", "hzz plotter --out DIR &                                   "
     "# the service: one PNG per document"): (
        "tests/test_broker.py::test_run_with_broker_sends_the_figure_to_the_service"
    ),
    ("docs/user-guide.md", ".venv/bin/hzz run --data ../shared/data/atlas-opendata-2020/4lep "
     "--allow-missing --checkpoint checkpoints"): CHECKPOINT_GUIDE,
    ("docs/user-guide.md", "checkpoint: 12 of 20 partitions reused"): CHECKPOINT_GUIDE,
    ("bench/README.md", "python -m bench                     # full: 5M events, 3 rounds, "
     "≈ 3–4 min on 2 cores (+ input generation the first time)"): ".ci/run",
}  # fmt: skip

#: The blocks this module runs, by page and first line: the test that does.
RUN_HERE: dict[tuple[str, str], str] = {
    ("docs/document.md", '{"schema": "hzz.histograms/2", "release": "2020", "lumi_fb": 10.0,'): (
        "test_the_document_example_is_the_current_schema"
    ),
    ("docs/document.md", '"partial": {"done": 12, "total": 40, "events": 310000, '
     '"run": "20261202-140512-a1b2c3"}'): "test_the_document_example_is_the_current_schema",
    ("docs/fit.md", "from analysis import render_products"): (
        "test_the_fit_pages_python_runs"
    ),
    ("docs/fit.md", "import json, pyhf"): "test_the_fit_pages_python_runs",
    ("docs/user-guide.md", "hzz run [--release 2020|2025] [--data LOCATION]... [--out DIR]"): (
        "test_the_usage_lines_name_real_options"
    ),
    ("docs/user-guide.md", "MIRROR/Data/data_A.4lep.root … data_D.4lep.root"): (
        "test_the_mirror_layout_is_the_real_one"
    ),
    ("docs/user-guide.md", "hzz download --release 2020 --out MIRROR [--samples A,B] "
     "[--groups G] [--data BASE_URL]"): "test_the_usage_lines_name_real_options",
    ("docs/user-guide.md", ".venv/bin/hzz generate --out standins --events 20000   # without "
     "--events: ≈ 940k events, ≈ 15 s"): "test_the_user_guides_stand_ins_run_as_written",
}  # fmt: skip


def test_every_block_runs_somewhere() -> None:
    found = {(b.page, b.first) for b in blocks()}
    unrun = sorted(found - RUN_BY.keys() - RUN_HERE.keys())
    assert not unrun, f"blocks no test or CI step runs (add them to RUN_BY or RUN_HERE): {unrun}"
    stale = sorted((RUN_BY.keys() | RUN_HERE.keys()) - found)
    assert not stale, f"entries for blocks that are no longer there: {stale}"
    here = {name for name, value in globals().items() if name.startswith("test_")}
    assert set(RUN_HERE.values()) <= here


def _ci_steps() -> str:
    """The CI script: what it runs, including the scripts it calls."""
    scripts = [ROOT / ".ci" / "run", *sorted((ROOT / ".ci").glob("*.sh"))]
    return "\n".join(path.read_text("utf-8") for path in scripts)


@pytest.mark.parametrize("where", sorted(set(RUN_BY.values())))
def test_the_named_runner_exists_and_runs_the_blocks(where: str) -> None:
    """A test: defined, reading the page of a Python block, naming the ``hzz`` command of
    each shell line. A CI step: run by .ci/run, running each shell line's program."""
    path, _, name = where.partition("::")
    source = (ROOT / path).read_text("utf-8")
    if name:  # the test's own module and the helpers it runs hzz with
        source += (ROOT / "tests" / "helpers.py").read_text("utf-8")
        defined = {n.name for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef)}
        assert name in defined, where
    else:
        assert path == ".ci/run" or f"bash {path}" in _ci_steps(), where
    for block in (b for b in blocks() if RUN_BY.get((b.page, b.first)) == where):
        if block.title:  # run whole, as written, by .ci/doc_blocks.py
            assert f"{block.page} '{block.title}'" in source, (where, block.title)
            continue
        if block.lang == "python":
            page = Path(block.page).name
            assert page in source or f'"{page.split(".")[0]}' in source, (where, block.page)
            continue
        for command in block.commands():
            words = [w.removeprefix(".venv/bin/") for w in shlex.split(command)]
            if name and words[0] == "hzz":  # a test runs hzz with the subcommand's name
                assert f'"{words[1]}"' in source, f"{where} runs no hzz {words[1]}: {command!r}"
            elif not name:  # CI: the program and its subcommand, as the step writes them
                if words[0] == "bash" and words[1] == ".ci/run":
                    continue  # the README's second command: CI itself
                program = " ".join(words[: 3 if words[0] == "python" else 2])
                if words[0] == "open":  # a browser on the dashboard
                    program = "dashboard_check"
                text = source.replace(".venv/bin/python ", "python ").replace('"$HZZ"', "hzz")
                assert program in text, f"{where} runs no {command!r}"


def _command_parser(words: list[str]) -> argparse.ArgumentParser:
    """The parser of ``hzz WORDS…``: subcommands followed as far as the words name them."""
    from cluster.cli import build_parser

    parser = build_parser()
    for word in words:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or word not in subs[0].choices:
            break
        parser = subs[0].choices[word]
    return parser


def _usage_options(words: list[str]) -> set[str]:
    parser = _command_parser(words)
    return {o for action in parser._actions for o in action.option_strings}


def test_the_usage_lines_name_real_options() -> None:
    """Every ``hzz …`` line of every block names options its command has; the
    synopsis of ``hzz run`` names all of them."""
    checked = 0
    for block in blocks():
        for command in block.commands():
            words = command.replace(".venv/bin/hzz", "hzz").replace("…", "").split()
            if words[:1] != ["hzz"]:
                continue
            known = _usage_options(words[1:])
            named = set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", " ".join(words)))
            assert named <= known, f"{block.page}:{block.line}: {sorted(named - known)}"
            checked += 1
    assert checked >= 15
    (synopsis,) = [b for b in blocks() if b.first.startswith("hzz run [--release")]
    shown = set(re.findall(r"--[a-z][\w-]*", synopsis.text))
    assert shown == _usage_options(["run"]) - {"-h", "--help", "-v", "--verbose"} - {
        "--fit", "--exchange", "--queue", "--broker-timeout"
    } | {"--broker"}  # fmt: skip


def test_the_document_example_is_the_current_schema() -> None:
    examples = [b for b in blocks() if b.lang == "json" and b.page == "docs/document.md"]
    (block,) = [b for b in examples if b.first.startswith('{"schema"')]
    schemas = sorted((ROOT / "analysis" / "schema").glob("histograms-*.schema.json"))
    schema = json.loads(schemas[-1].read_text("utf-8"))
    # A fragment shown alone is whole, and valid as the schema says.
    for fragment in (b for b in examples if b is not block):
        import fastjsonschema

        value = json.loads("{" + fragment.text + "}")
        (key,) = value
        fastjsonschema.compile({**schema["definitions"][key], "definitions": {}})(value[key])
    shown = re.search(r'"schema": "([^"]+)"', block.text)
    assert shown and shown[1] == schema["properties"]["schema"]["const"]
    keys = _top_level_keys(block.text)
    assert set(schema["required"]) <= keys <= set(schema["properties"])
    group = schema["definitions"]["group"]["required"]
    assert all(f'"{key}":' in block.text for key in group)


def _top_level_keys(text: str) -> set[str]:
    """The keys of the outermost object of a JSON text with elisions (``…``)."""
    keys, depth = set(), 0
    for token in re.finditer(r'"((?:[^"\\]|\\.)*)"(\s*:)?|[{}\[\]]', text):
        if token[0] in "{[":
            depth += 1
        elif token[0] in "}]":
            depth -= 1
        elif token[2] and depth == 1:
            keys.add(token[1])
    return keys


def test_the_mirror_layout_is_the_real_one() -> None:
    from analysis.inputs.catalogue import load_release

    (block,) = [b for b in blocks() if b.first.startswith("MIRROR/Data/")]
    paths = {s.path for s in load_release("2020").samples.values()}
    named = re.findall(r"(MIRROR/\w+/)?([\w.]+\.root)", block.text)
    folder = ""
    for prefix, name in named:
        folder = prefix.removeprefix("MIRROR/") or folder
        assert f"{folder}{name}" in paths, f"{folder}{name}"
    assert len(named) >= 4


@pytest.mark.cluster
def test_the_user_guides_stand_ins_run_as_written(tmp_path: Path) -> None:
    (block,) = [b for b in blocks() if "generate --out standins --events" in b.first]
    checkout = checkout_in(tmp_path)
    for command in block.commands():
        result = subprocess.run(
            ["bash", "-c", command], cwd=checkout, capture_output=True, text=True, timeout=900
        )
        assert result.returncode == 0, f"{command}: {result.stderr}"
    (document,) = outputs_in(checkout / "plots", ".json")
    assert not from_json(document.read_bytes()).missing


def test_the_fit_pages_python_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import dask

    from analysis import build, inspect
    from analysis.results.accounting import assemble_document
    from analysis.standins import write_standins

    first, refit = [b for b in blocks() if b.page == "docs/fit.md" and b.lang == "python"]
    # The page's document, as hzz run writes it, under the name the page uses.
    write_standins(tmp_path / "standins", events=5_000, seed=3)
    graph = build(inspect([str(MIRROR_2020), str(tmp_path / "standins")]), readers=1)
    (computed,) = dask.compute(graph.outputs(), scheduler="sync")
    name = re.search(r'open\("plots/(plot_[\d_-]+)\.json"', first.text)[1]  # type: ignore[index]
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / f"{name}.json").write_bytes(
        assemble_document(graph.computed(computed)).to_json()
    )
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(first.text, "docs/fit.md", "exec"), namespace)
    result, files = namespace["result"], namespace["files"]
    assert "signal strength mu" in capsys.readouterr().out
    # The second block refits the workspace the first one wrote, with pyhf alone.
    (workspace,) = [body for ending, body in files.items() if ending.endswith("workspace.json")]
    (kept,) = re.findall(r'open\("([^"]+\.workspace\.json)"\)', refit.text)
    assert kept == f"{name}{fit_endings().workspace_json}"  # the name hzz fit gives it
    (tmp_path / kept).write_bytes(workspace)
    exec(compile(refit.text, "docs/fit.md", "exec"), {})
    mu, error = (float(x) for x in capsys.readouterr().out.strip("[] \n").split())
    assert mu == pytest.approx(result.mu, rel=1e-3) and error > 0
