"""The statistical model from the document alone, its fit, and the figures drawn from them.

Fits run on the real files completed by stand-ins (``hzz generate``): their yields are
the published ones, their shapes are simulated, so the fitted numbers are checked for
consistency (Asimov, a plain pyhf refit), not against the AGC's published values.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import dask
import numpy as np
import pyhf
import pytest
from matplotlib.container import ErrorbarContainer
from matplotlib.ticker import MaxNLocator
from scipy.stats import norm

from analysis import build, inspect
from analysis.inputs.catalogue import load_release
from analysis.results.accounting import assemble_document
from analysis.results.document import HistogramDocument, from_json
from analysis.results.fit import FitError, FitResult, fit_document, fit_spec, workspace_spec
from analysis.results.outputs import STEM_GLOB, outputs_in
from analysis.results.plot import DPI, draw, garwood, render_png, warm_up
from analysis.results.products import document_id, fit_endings
from analysis.standins import write_standins
from cluster.cli import main as cli_main

FIT_JSON = fit_endings().fit_json
WORKSPACE_JSON = fit_endings().workspace_json
RELEASE = load_release("2020")
# The AGC's template-only variant, pre-fit in 80-250 GeV: Z,tt̄ 112.13 and data 371;
# per sample, ours in the same range.
Z_TT_IN_RANGE = {"Zee": 40.899288, "Zmumu": 47.621613, "ttbar_lep": 23.611706}


@pytest.fixture(scope="module")
def standins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("standins")
    write_standins(out, events=30_000, seed=11)
    return out


def _document(*locations: Path) -> HistogramDocument:
    graph = build(inspect([str(p) for p in locations], allow_missing=True), readers=1)
    (computed,) = dask.compute(graph.outputs(), scheduler="sync")
    return from_json(assemble_document(graph.computed(computed)).to_json())


@pytest.fixture(scope="module")
def full(mirror: Path, standins: Path) -> HistogramDocument:
    return _document(mirror, standins)


@pytest.fixture(scope="module")
def real_only(mirror: Path) -> HistogramDocument:
    return _document(mirror)


@pytest.fixture(scope="module")
def fitted(full: HistogramDocument) -> tuple[FitResult, dict]:
    return fit_document(full)


def test_prefit_yields_in_range_are_the_agcs(real_only: HistogramDocument) -> None:
    for name, expected in Z_TT_IN_RANGE.items():
        assert real_only.samples[name].hist.sum().value == pytest.approx(expected, rel=1e-6)
    z_tt = real_only.group_histogram("Background $Z,t\\bar{t}$").sum().value
    assert z_tt == pytest.approx(112.13, abs=0.005)
    assert real_only.group_histogram("Data").sum().value == 371


def test_without_signal_there_is_nothing_to_fit(real_only: HistogramDocument) -> None:
    with pytest.raises(FitError, match="no signal sample"):
        workspace_spec(real_only)


def test_the_model_has_the_agc_modifiers(full: HistogramDocument) -> None:
    spec = workspace_spec(full)
    samples = {s["name"]: s for s in spec["channels"][0]["samples"]}
    assert sorted(samples) == ["signal", "z_tt", "zz"]
    kinds = {name: {(m["name"], m["type"]) for m in s["modifiers"]} for name, s in samples.items()}
    shared = {("staterror_m4l", "staterror")} | {
        (n, t) for n in ("scale_factors", "m4l_scale") for t in ("normsys", "histosys")
    }
    assert kinds["signal"] == shared | {("mu", "normfactor")}
    assert kinds["zz"] == shared | {("zz_norm", "normsys")}
    assert kinds["z_tt"] == shared
    sf = next(m for m in samples["zz"]["modifiers"] if m["name"] == "scale_factors")
    assert sf["data"] == pytest.approx({"hi": 1.1, "lo": 0.9})
    assert spec["observations"][0]["data"] == list(full.group_histogram("Data").values())
    assert sum(samples["z_tt"]["data"]) == pytest.approx(112.13, abs=0.005)


def test_asimov_data_give_mu_one_and_the_expected_significance(
    full: HistogramDocument, fitted: tuple[FitResult, dict]
) -> None:
    result, spec = fitted
    # The expected data at mu = 1 with every nuisance parameter at its nominal value.
    model = pyhf.Workspace(spec).model()
    asimov = model.expected_data(model.config.suggested_init())
    spec_asimov = json.loads(json.dumps(spec))
    spec_asimov["observations"][0]["data"] = [float(x) for x in asimov[: model.config.nmaindata]]
    on_asimov = fit_spec(spec_asimov)
    assert on_asimov.mu == pytest.approx(1.0, abs=2e-3)
    for pull in on_asimov.pulls:
        assert abs(pull.pull) < 1e-2 and pull.error <= 1.0 + 1e-3
    # The expected significance is the observed one of the Asimov data set at mu = 1 with
    # the nuisance parameters profiled on the data (the asymptotic formulae's convention).
    pyhf.set_backend("numpy", pyhf.optimize.minuit_optimizer(verbose=0))
    data = pyhf.Workspace(spec).data(model)
    expected_data = pyhf.infer.calculators.generate_asimov_data(
        1.0,
        data,
        model,
        model.config.suggested_init(),
        model.config.suggested_bounds(),
        model.config.suggested_fixed(),
    )
    mu_hat = pyhf.infer.mle.fit(expected_data, model)[model.config.poi_index]
    assert mu_hat == pytest.approx(1.0, abs=2e-3)
    p0 = pyhf.infer.hypotest(0.0, expected_data, model, test_stat="q0")
    assert float(norm.isf(float(p0))) == pytest.approx(result.significance_expected, rel=1e-3)


@pytest.mark.faults
def test_plain_pyhf_refits_the_written_workspace(fitted: tuple[FitResult, dict]) -> None:
    """μ̂ is at the minimum: a strict Minuit (strategy 2, EDM below 2e-9) and scipy on
    the written workspace agree with it to 1e-3 (pyhf's default Minuit tolerance
    stopped 0.005 short)."""
    result, spec = fitted
    workspace = pyhf.Workspace(json.loads(json.dumps(spec)))
    model = workspace.model()
    data = workspace.data(model)
    poi = model.config.poi_index
    strict = pyhf.optimize.minuit_optimizer(verbose=0, strategy=2, tolerance=1e-6)
    pyhf.set_backend("numpy", strict)
    bestfit, twice_nll = pyhf.infer.mle.fit(
        data, model, return_uncertainties=True, return_fitted_val=True
    )
    mu, sigma = bestfit[poi]
    assert mu == pytest.approx(result.mu, abs=1e-3)
    assert sigma == pytest.approx(result.mu_error, rel=1e-3)
    pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer(tolerance=1e-10))
    scipy_fit, scipy_twice_nll = pyhf.infer.mle.fit(data, model, return_fitted_val=True)
    assert scipy_fit[poi] == pytest.approx(result.mu, abs=1e-3)
    reported = np.asarray(model.config.suggested_init(), dtype=float)
    for name, pairs in result.parameters.items():  # [value, error] or one pair per bin
        if name in model.config.par_order:
            values = [p[0] for p in pairs] if isinstance(pairs[0], list) else [pairs[0]]
            reported[model.config.par_slice(name)] = values
    ours = float(pyhf.infer.mle.twice_nll(reported, data, model)[0])
    assert ours <= min(float(twice_nll), float(scipy_twice_nll)) + 1e-4
    assert 0 < result.mu < 10 and result.mu_error > 0
    assert 0 <= result.cls_mu1 <= 1 and result.significance_expected > 0
    assert [p.name for p in result.pulls] == ["m4l_scale", "scale_factors", "zz_norm"]
    assert result.prefit_yields["data"] == 371
    assert any("stand-ins" in note for note in result.notes)
    # Every parameter as [value, error]; one such pair per bin for the MC statistics.
    gammas = bestfit[model.config.par_slice("staterror_m4l")]
    pairs = np.array(result.parameters["staterror_m4l"], dtype=float)
    assert pairs.shape == gammas.shape and np.allclose(pairs, gammas, rtol=1e-3, atol=1e-4)
    assert len(result.parameters["staterror_m4l_pulls"]) == len(gammas)
    assert result.parameters["mu"] == pytest.approx([mu, sigma], rel=1e-3)


def test_the_table_is_plain_text_with_data_as_counts(fitted: tuple[FitResult, dict]) -> None:
    result, _ = fitted
    table = result.table()
    assert "$" not in table and "\\" not in table
    assert "stand-ins for Background ZZ*, Signal (m_H = 125 GeV)" in table
    (data,) = [line.split() for line in table.splitlines() if line.split()[:1] == ["data"]]
    assert data == ["data", "371"]


def _texts(figure) -> str:
    return "\n".join(t.get_text() for t in figure.findobj(lambda a: hasattr(a, "get_text")))


def test_the_figure_draws_only_what_is_there(real_only: HistogramDocument) -> None:
    figure = draw(real_only)
    assert figure.dpi == DPI >= 150
    main, ratio = figure.axes
    legend = [t.get_text() for t in main.get_legend().get_texts()]
    assert legend == ["Data", "Background $Z,t\\bar{t}$", "Stat. ⊕ syst. unc."]
    # data points: one per non-empty bin, at the counts, with Garwood errors
    counts = real_only.group_histogram("Data").values()
    (data,) = [c for c in main.containers if isinstance(c, ErrorbarContainer)]
    _x, y = data.lines[0].get_data()
    assert len(y) == np.count_nonzero(counts) and np.array_equal(y, counts[counts > 0])
    # the notes name physics labels and sit below every axes, inside the figure
    (note,) = [t for t in figure.texts if t.get_gid() == "notes"]
    assert "Not available, not drawn: Background $ZZ^*$, Signal" in note.get_text()
    assert "llll" not in note.get_text()
    renderer = figure.canvas.get_renderer()
    box = note.get_window_extent(renderer)
    for axes in (main, ratio):
        assert box.y1 < axes.get_tightbbox(renderer).y0
    assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= figure.bbox.x1
    assert isinstance(main.yaxis.get_major_locator(), MaxNLocator)
    assert all(float(t).is_integer() for t in main.get_yticks())
    assert "ATLAS" in _texts(figure) and "Open Data" in _texts(figure)
    assert ratio.get_ylabel() == "Data / Pred."


def test_a_warm_up_figure_leaves_the_real_one_unchanged(full: HistogramDocument) -> None:
    """``hzz run`` draws a throw-away figure while the workers compute: the real
    figure drawn after it is the same, byte for byte, as one drawn without it."""
    before = render_png(full)
    for release in ("2025", "2020"):
        warm_up(load_release(release))
    assert render_png(full) == before


def test_garwood_intervals() -> None:
    low, high = garwood(np.array([0, 1, 10]))
    assert low == pytest.approx([0.0, 0.8275, 3.1086], abs=1e-3)
    assert high == pytest.approx([1.8410, 2.2996, 4.2670], abs=1e-3)


def test_the_postfit_figure_draws_the_fitted_prediction(
    full: HistogramDocument, fitted: tuple[FitResult, dict]
) -> None:
    result, _ = fitted
    figure = draw(full, result)
    main, _ratio = figure.axes
    legend = [t.get_text() for t in main.get_legend().get_texts()]
    assert legend[0] == "Data" and legend[-1] == "Post-fit unc." and len(legend) == 5
    assert f"{result.mu:.2f}" in _texts(figure)
    assert "Post-fit, systematics model" in _texts(figure)
    bands = [p for p in main.patches if p.get_gid() == "uncertainty-band"]
    total = sum(np.asarray(v) for v in result.postfit_bins.values())
    tops = np.array([p.get_y() + p.get_height() for p in bands])
    assert tops == pytest.approx(total + np.asarray(result.postfit_error), rel=1e-9)
    (note,) = [t for t in figure.texts if t.get_gid() == "notes"]
    assert "Simulated stand-ins: Background $ZZ^*$, Signal" in note.get_text()


@pytest.mark.cluster
def test_hzz_run_fit_end_to_end(
    mirror: Path, standins: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "plots"
    code = cli_main(
        ["run", "--data", str(mirror), "--data", str(standins), "--fit", "--out", str(out),
         "--workers", "1", "--dashboard", ":0", "--no-progress"]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "signal strength mu" in printed and "stand-ins" in printed
    names = sorted(p.name.split(".", 1)[1] for p in out.iterdir())
    assert names == [
        "json", "png", "systematics.fit.json", "systematics.postfit.png",
        "systematics.workspace.json",
    ]  # fmt: skip
    (fit_path,) = outputs_in(out, FIT_JSON)
    fit = json.loads(fit_path.read_text())
    (saved,) = outputs_in(out, ".json")
    document = from_json(saved.read_bytes())
    assert document.figure.fit and document.samples["llll"].variations
    assert fit["document"] == {"id": document_id(saved.read_bytes()), "file": None}
    # hzz fit on the saved document: the same numbers, under the same names (no _2 that
    # would look like another run), now naming the document's file too
    assert cli_main(["fit", str(saved)]) == 0
    assert outputs_in(out, FIT_JSON) == [fit_path]
    again = json.loads(fit_path.read_text())
    assert again["mu"] == pytest.approx(fit["mu"], rel=1e-6)
    assert again["document"] == {"id": document_id(saved.read_bytes()), "file": saved.name}
    # the other model: files of its own name beside them
    assert cli_main(["fit", str(saved), "--model", "templates"]) == 0
    printed = capsys.readouterr().out
    templates = fit_endings("templates")
    assert str(saved.with_name(saved.stem + templates.postfit_png)) in printed
    assert json.loads(outputs_in(out, templates.fit_json)[0].read_text())["model"] == "templates"
    assert len(list(out.iterdir())) == 8


@pytest.mark.broker
def test_the_plotting_service_fits_when_the_document_asks(
    full: HistogramDocument, tmp_path: Path
) -> None:
    from dataclasses import replace

    from cluster.service.amqp import Topology
    from cluster.service.publisher import publish

    from .helpers import URL, Broker, Plotter, wait_for

    tag = uuid.uuid4().hex[:8]
    broker = Broker(Topology(exchange=f"hzz-test-{tag}.x", queue=f"hzz-test-{tag}.q"))
    out = tmp_path / "plots"
    # A 2 s heartbeat: the fit takes longer, so the link lives only if it is serviced.
    plotter = Plotter(out, broker, "--broker", URL + "?heartbeat=2")
    try:
        asked = replace(full, figure=replace(full.figure, fit=True))
        publish(asked.to_json(), URL, broker.topology, timeout_s=30)
        wait_for(lambda: outputs_in(out, WORKSPACE_JSON), "the fit's files", timeout=600)
        log = plotter.text()
    finally:
        plotter.stop()
        broker.close()
    names = sorted(p.name.split(".", 1)[1] for p in out.glob(STEM_GLOB))
    assert names == [
        "png", "systematics.fit.json", "systematics.postfit.png", "systematics.workspace.json"
    ]  # fmt: skip
    fit = json.loads(outputs_in(out, FIT_JSON)[0].read_text())
    assert 0 < fit["mu"] < 10 and fit["notes"]
    assert "link lost" not in log and "redelivered" not in log


# --------------------------------------------------------------------------- failed fits


def _zeroed(document: HistogramDocument, roles: set[str]) -> HistogramDocument:
    """The document with every histogram of the groups of ``roles`` zero, asking for a fit."""
    raw = json.loads(document.to_json())
    zeroed = {n for g in raw["groups"] if g["role"] in roles for n in g["samples"]}
    for name in zeroed:
        sample = raw["samples"][name]
        for histogram in (sample["hist"], *sample.get("variations", {}).values()):
            storage = histogram["storage"]
            storage["values"] = [0.0] * len(storage["values"])
            storage["variances"] = [0.0] * len(storage["variances"])
        sample["sumw"] = 0.0
    raw["figure"]["fit"] = True
    return from_json(json.dumps(raw))


@pytest.mark.faults
@pytest.mark.parametrize(
    ("roles", "reason"),
    [
        ({"signal", "background"}, "is zero in every bin: the signal strength cannot be fitted"),
        ({"background"}, "the fit failed: FailedMinimization: Optimization failed."),
    ],
)
def test_a_fit_that_fails_is_a_fit_error_and_hzz_fit_says_why(
    full: HistogramDocument, tmp_path: Path, roles: set[str], reason: str
) -> None:
    """All simulation zero (nothing to fit), or backgrounds zero where data has events
    (Minuit fails): FitError; ``hzz fit`` exit 2 with one line, no traceback (before: a
    pyhf traceback, exit 1)."""
    document = _zeroed(full, roles)
    with pytest.raises(FitError, match=reason.split(":")[0]):
        fit_document(document)
    path = tmp_path / "doc.json"
    path.write_bytes(document.to_json())
    result = subprocess.run(
        [sys.executable, "-m", "cluster.cli", "fit", str(path)],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("hzz fit: ") and reason in line
    assert "Traceback" not in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["doc.json"]


@pytest.mark.faults
@pytest.mark.broker
def test_the_plotting_service_draws_the_figure_of_a_document_it_cannot_fit(
    full: HistogramDocument, tmp_path: Path
) -> None:
    """Simulation all zero, a fit asked for: the pre-fit figure is drawn, the failure
    logged in one line, the message acked (before: dead-lettered with a pyhf traceback
    in the log, no figure)."""
    from cluster.service.amqp import Topology
    from cluster.service.publisher import publish

    from .helpers import URL, Broker, Plotter, wait_for

    tag = uuid.uuid4().hex[:8]
    broker = Broker(Topology(exchange=f"hzz-test-{tag}.x", queue=f"hzz-test-{tag}.q"))
    out = tmp_path / "plots"
    plotter = Plotter(out, broker)
    try:
        for roles in ({"signal", "background"}, {"background"}):
            publish(_zeroed(full, roles).to_json(), URL, broker.topology, timeout_s=30)
        wait_for(lambda: len(outputs_in(out, ".png")) == 2, "two pre-fit figures", timeout=600)
        wait_for(lambda: plotter.text().count("wrote") == 2, "both acked", timeout=60)
        log = plotter.text()
        assert broker.counts() == 0
        assert broker.counts(broker.topology.dead_letter_queue) == 0
    finally:
        plotter.stop()
        broker.close()
    assert "no fit: the signal (" in log and "no fit: the fit failed: FailedMinimization" in log
    assert "Traceback" not in log and "dead-letter" not in log
    assert not outputs_in(out, WORKSPACE_JSON) and not outputs_in(out, FIT_JSON)
