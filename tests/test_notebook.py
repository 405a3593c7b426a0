"""The notebook page (docs/notebook.md) runs as written, on a LocalCluster and on a
Client in this process, and gives the published numbers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import matplotlib
import pytest
from distributed import Client, LocalCluster

import analysis
from analysis.errors import InputError

from .helpers import PUBLISHED_COUNTS, PUBLISHED_YIELDS, ROOT, YIELD_REL_TOL

PAGE = Path(__file__).resolve().parents[1] / "docs" / "notebook.md"


#: The page's section run in a real Jupyter kernel (below); those before it run here.
LIVE_SECTION = "## Live results in Jupyter"


def code_blocks(live: bool = False) -> list[str]:
    """The page's Python blocks: those before the live section, or those in it."""
    before, _, after = PAGE.read_text("utf-8").partition(LIVE_SECTION)
    return re.findall(r"```python\n(.*?)```", after if live else before, flags=re.S)


@pytest.fixture(
    params=[pytest.param("LocalCluster", marks=pytest.mark.cluster), "Client(processes=False)"]
)
def client(request: pytest.FixtureRequest) -> Iterator[Client]:
    if request.param == "LocalCluster":
        with (
            LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster,
            Client(cluster) as client,
        ):
            yield client
    else:
        with Client(
            processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0"
        ) as client:
            yield client


def test_the_notebook_page_gives_the_published_numbers(
    client: Client, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The page's relative path, from the repository root: resolved here, not by the workers.
    monkeypatch.chdir(ROOT)
    backend = matplotlib.get_backend()
    namespace: dict[str, object] = {}
    for block in code_blocks():
        exec(compile(block, str(PAGE), "exec"), namespace)
    assert matplotlib.get_backend() == backend

    result, mine = namespace["result"], namespace["mine"]
    for each in (result, mine):
        for name, (n_in, n_out) in PUBLISHED_COUNTS.items():
            sample = each.samples[name]
            assert (sample.n_in, sample.n_out) == (n_in, n_out), name
        for name, value in PUBLISHED_YIELDS.items():
            assert each.yields[name] == pytest.approx(value, rel=YIELD_REL_TOL), name
    zz = result["zz"]
    assert zz.sum(flow=True).value == pytest.approx(
        sum(result.samples[n].sumw for n in result.group_samples("zz")), rel=1e-12
    )
    assert namespace["ax"].get_legend() is not None
    printed = capsys.readouterr().out
    assert "898 243 43.14179" in printed and "Zee" in printed


README = ROOT / "README.md"


def test_the_readme_notebook_example_gives_the_published_numbers(
    client: Client, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (block,) = re.findall(r"```python\n(.*?)```", README.read_text("utf-8"), flags=re.S)
    monkeypatch.chdir(ROOT)
    backend = matplotlib.get_backend()
    namespace: dict[str, object] = {}
    exec(compile(block, str(README), "exec"), namespace)
    assert matplotlib.get_backend() == backend
    result = namespace["result"]
    for name, (n_in, n_out) in PUBLISHED_COUNTS.items():
        assert (result.samples[name].n_in, result.samples[name].n_out) == (n_in, n_out)
    z_tt = sum(result.yields[name] for name in ("Zee", "Zmumu", "ttbar_lep"))
    assert namespace["zz_tt"].sum(flow=True).value == pytest.approx(z_tt, rel=1e-12)
    assert namespace["ax"].get_legend() is not None
    assert "243 43.14179" in capsys.readouterr().out


def test_a_location_with_no_file_is_named_in_the_error(tmp_path: Path) -> None:
    # Every sample missing, allowed: the error says where it looked, and that it is not there.
    nowhere = tmp_path / "atlas-opendata-2020" / "4lep"
    with pytest.raises(InputError, match=f"in {nowhere} \\(no such directory\\)"):
        analysis.inspect(data=str(nowhere), allow_missing=True)


@pytest.mark.cluster
def test_the_live_figure_updates_in_a_real_jupyter_kernel() -> None:
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(block) for block in code_blocks(live=True)]
    assert notebook.cells, f"no Python block under {LIVE_SECTION!r}"
    executed = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT)}},
    ).execute()
    outputs = [output for cell in executed.cells for output in cell.outputs]
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, errors
    # The one display, updated in place: it ends as the final figure, a PNG.
    (display,) = [o for o in outputs if o.output_type == "display_data"]
    assert display.data["image/png"]
    printed = "".join(o.text for o in outputs if o.output_type == "stream" and o.name == "stdout")
    partials = int(re.search(r"^(\d+) partial figures;", printed, re.M).group(1))
    assert partials >= 2, printed
    for name, (n_in, n_out) in PUBLISHED_COUNTS.items():
        assert re.search(rf"^{name}\s+{n_in}\s+{n_out}\s", printed, re.M), name
