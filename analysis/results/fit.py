"""The statistical model of a histogram document and its fit: a binned likelihood (pyhf).

Built from the document alone, as the IRIS-HEP Analysis Grand Challenge builds its
H → ZZ* → 4ℓ model with cabinetry, so that the numbers compare (docs/fit.md): one
channel of the m4l bins, one sample per simulated group, the signal strength ``mu``
free in [0, 10], the systematics of ``analysis.physics.systematics`` (a shape one as
cabinetry's NormPlusShape: a ``normsys`` and a ``histosys`` sharing one parameter) and
the per-bin MC statistics; ``model="templates"`` is the AGC's template-only variant.
pyhf and iminuit are imported here only: the workers never need them.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from analysis.errors import InputError
from analysis.physics.systematics import NORMALISATIONS, SHAPES, SYSTEMATICS
from analysis.results.document import HistogramDocument

POI = "mu"
CHANNEL = "m4l"
MU_BOUNDS = (0.0, 10.0)
STATERROR = f"staterror_{CHANNEL}"
Model = Literal["systematics", "templates"]
MODELS: tuple[str, ...] = ("systematics", "templates")
#: Parameters the fit table lists as pulls (the per-bin MC statistics are in the JSON).
NAMED_NUISANCES = tuple(s.name for s in SYSTEMATICS)


class FitError(InputError):
    """The document cannot be fitted (no data, no signal, a fit that does not converge,
    …); the message says why. Every failure of a fit is one: a caller draws the pre-fit
    figure and notes it, never loses the figure to a pyhf or iminuit exception."""


#: Minuit settings of every fit (μ̂ and the hypothesis tests' fits): strategy 1 and
#: ``tolerance`` 1e-4, i.e. MIGRAD stops at an estimated distance to the minimum below
#: 0.002 × 1e-4 = 2e-7 in −log L. pyhf's default tolerance (0.1) stopped 0.005 short of
#: the minimum in μ on the real files plus stand-ins; strategy 2 went astray on small
#: stand-in samples (an invalid minimum at μ = 1).
MINUIT_STRATEGY = 1
MINUIT_TOLERANCE = 1e-4


def require_pyhf() -> Any:
    """pyhf, set up for these fits (FitError naming the extra when it is not installed)."""
    try:
        import pyhf
    except ImportError as err:  # the optional extra is not installed
        raise FitError(
            "the fit needs pyhf and iminuit: pip install -c constraints.txt -e '.[fit]'"
        ) from err
    pyhf.set_backend(
        "numpy",
        pyhf.optimize.minuit_optimizer(
            verbose=0, strategy=MINUIT_STRATEGY, tolerance=MINUIT_TOLERANCE
        ),
    )
    # pyhf logs a failed minimisation at ERROR with a traceback and Minuit's whole state;
    # it is raised as FitError and reported once, in one line, by the caller.
    logging.getLogger("pyhf.optimize.mixins").setLevel(logging.CRITICAL)
    # pyhf 0.7 validates workspaces with jsonschema's RefResolver, deprecated there.
    warnings.filterwarnings("ignore", "jsonschema.RefResolver is deprecated", DeprecationWarning)
    return pyhf


def _in_range(values: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=float)]


def workspace_spec(document: HistogramDocument, model: Model = "systematics") -> dict[str, Any]:
    """The pyhf workspace of the document (JSON-serialisable), or FitError saying why not."""
    if model not in MODELS:
        raise FitError(f"unknown model {model!r}; known: {', '.join(MODELS)}")
    data_groups = [g for g in document.groups if g.role == "data"]
    observed = sum(
        (
            document.group_histogram(g.label).values()
            for g in data_groups
            if document.samples_of(g.label)
        ),
        start=np.zeros(document.binning.bins),
    )
    if not any(document.samples_of(g.label) for g in data_groups):
        raise FitError("no data in the document: nothing to fit")
    simulated = [g for g in document.groups if g.role != "data" and document.samples_of(g.label)]
    if not any(g.role == "signal" for g in simulated):
        raise FitError("no signal sample in the document: the signal strength cannot be fitted")
    samples = []
    for group in simulated:
        nominal_hist = document.group_histogram(group.label)
        nominal = nominal_hist.values()
        total = float(nominal.sum())
        if group.role == "signal" and not total > 0:
            raise FitError(
                f"the signal ({group.label}) is zero in every bin: "
                "the signal strength cannot be fitted"
            )
        modifiers: list[dict[str, Any]] = [
            {
                "name": STATERROR,
                "type": "staterror",
                "data": _in_range(np.sqrt(nominal_hist.variances())),
            }
        ]
        if group.role == "signal":
            modifiers.append({"name": POI, "type": "normfactor", "data": None})
        elif model == "templates":
            modifiers.append({"name": f"norm_{group.key}", "type": "normfactor", "data": None})
        if model == "systematics":
            for systematic in SHAPES:
                if not document.group_has(group.label, systematic.up, systematic.down):
                    continue
                if total <= 0:
                    continue
                up = document.group_histogram(group.label, systematic.up).values()
                down = document.group_histogram(group.label, systematic.down).values()
                hi, lo = float(up.sum()) / total, float(down.sum()) / total
                modifiers.append(
                    {"name": systematic.name, "type": "normsys", "data": {"hi": hi, "lo": lo}}
                )
                modifiers.append(
                    {
                        "name": systematic.name,
                        "type": "histosys",
                        "data": {"hi_data": _in_range(up / hi), "lo_data": _in_range(down / lo)},
                    }
                )
            for norm in NORMALISATIONS:
                if group.key == norm.group:
                    modifiers.append(
                        {
                            "name": norm.name,
                            "type": "normsys",
                            "data": {"hi": 1.0 + norm.norm, "lo": 1.0 - norm.norm},
                        }
                    )
        samples.append({"name": group.key, "data": _in_range(nominal), "modifiers": modifiers})
    parameters: list[dict[str, Any]] = [{"name": POI, "bounds": [list(MU_BOUNDS)], "inits": [1.0]}]
    if model == "templates":
        parameters += [
            {"name": f"norm_{g.key}", "bounds": [list(MU_BOUNDS)], "inits": [1.0]}
            for g in simulated
            if g.role == "background"
        ]
    return {
        "version": "1.0.0",
        "channels": [{"name": CHANNEL, "samples": samples}],
        "observations": [{"name": CHANNEL, "data": _in_range(observed)}],
        "measurements": [
            {"name": f"hzz_{model}", "config": {"poi": POI, "parameters": parameters}}
        ],
    }


@dataclass
class Pull:
    """A nuisance parameter after the fit, in units of its pre-fit uncertainty."""

    name: str
    pull: float
    error: float


@dataclass
class FitResult:
    """What the fit of a document found, and what it was fitted on."""

    model: str
    mu: float
    mu_error: float
    significance_observed: float
    significance_expected: float
    cls_mu1: float
    cls_mu1_expected: float
    pulls: list[Pull]
    #: name: [value, error]; a parameter per bin (``staterror_m4l``, and its pulls):
    #: one [value, error] pair per bin, [None, None] for a bin without simulation.
    parameters: dict[str, list[float] | list[list[float | None]]]
    prefit_yields: dict[str, float]  # per group key, in the m4l range, and "data"
    postfit_yields: dict[str, float]
    notes: list[str] = field(default_factory=list)
    #: Per bin: post-fit yield per group key, and the total's uncertainty.
    postfit_bins: dict[str, list[float]] = field(default_factory=dict)
    postfit_error: list[float] = field(default_factory=list)
    #: The document fitted: its id (SHA-256 of its JSON) and file name, when known.
    document: dict[str, str | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "hzz.fit/2", **asdict(self)}

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=1).encode("utf-8")

    def table(self) -> str:
        """The numbers for the terminal."""
        lines = [
            f"fit ({self.model} model)",
            f"  signal strength mu        {self.mu:.3f} ± {self.mu_error:.3f}",
            f"  discovery significance    {self.significance_observed:.2f} σ observed, "
            f"{self.significance_expected:.2f} σ expected",
            f"  CLs at mu = 1             {self.cls_mu1:.3f} observed, "
            f"{self.cls_mu1_expected:.3f} expected",
        ]
        for name, (value, error) in (
            (n, v[:2]) for n, v in self.parameters.items() if n.startswith("norm_")
        ):
            lines.append(f"  free normalisation {name[5:]:<7}{value:.3f} ± {error:.3f}")
        if self.pulls:
            lines.append("  pulls (θ̂ - θ₀)/Δθ")
            lines += [f"    {p.name:<22}{p.pull:+.3f} ± {p.error:.3f}" for p in self.pulls]
        lines.append("  yields in the m4l range   pre-fit   post-fit")
        for key, value in self.prefit_yields.items():
            post = self.postfit_yields.get(key)
            if post is None and value.is_integer():  # data: counted events
                lines.append(f"    {key:<22}{int(value):9d}")
            else:
                after = "" if post is None else f"{post:9.2f}"
                lines.append(f"    {key:<22}{value:9.2f} {after}".rstrip())
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def _significance(p_value: float) -> float:
    from scipy.stats import norm

    return float(norm.isf(min(max(p_value, 1e-300), 1.0)))


def _fit(pyhf: Any, data: Any, model: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    result, correlations = pyhf.infer.mle.fit(
        data, model, return_uncertainties=True, return_correlations=True
    )
    result = np.asarray(result)
    errors = result[:, 1]
    covariance = np.asarray(correlations) * np.outer(errors, errors)
    return result[:, 0], errors, covariance


def _group_yields(model: Any, pars: np.ndarray) -> dict[str, np.ndarray]:
    by_sample = np.asarray(model.main_model.expected_data(pars, return_by_sample=True))
    return {name: by_sample[i] for i, name in enumerate(model.config.samples)}


def _total_error(model: Any, pars: np.ndarray, covariance: np.ndarray) -> np.ndarray:
    """The post-fit uncertainty of the total prediction per bin: J C Jᵀ, J numerical."""
    base = np.asarray(model.main_model.expected_data(pars))
    jacobian = np.zeros((base.size, pars.size))
    for i in range(pars.size):
        step = max(1e-4, 1e-3 * math.sqrt(max(covariance[i, i], 0.0)))
        shifted = pars.copy()
        shifted[i] += step
        jacobian[:, i] = (np.asarray(model.main_model.expected_data(shifted)) - base) / step
    variance = np.einsum("bi,ij,bj->b", jacobian, covariance, jacobian)
    return np.sqrt(np.clip(variance, 0.0, None))


def _pairs(values: np.ndarray, errors: np.ndarray) -> list[list[float | None]]:
    """Per bin [value, error]; None where a value is undefined (no simulation there)."""
    return [
        [None if math.isnan(x) else float(x) for x in pair]
        for pair in zip(values, errors, strict=True)
    ]


def fit_spec(spec: dict[str, Any], notes: Sequence[str] = ()) -> FitResult:
    """Fit a workspace: μ̂ ± σ, discovery significance, CLs at μ = 1, pulls, yields.
    A fit that fails in any way (no convergence, a singular model, …) is a FitError."""
    pyhf = require_pyhf()
    try:
        with np.errstate(all="ignore"):  # a failure is reported once, as FitError
            return _fit_spec(pyhf, spec, notes)
    except FitError:
        raise
    except Exception as err:  # pyhf's FailedMinimization, iminuit, numpy, a bad workspace
        reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise FitError(f"the fit failed: {type(err).__name__}: {reason}") from err


def _fit_spec(pyhf: Any, spec: dict[str, Any], notes: Sequence[str]) -> FitResult:
    workspace = pyhf.Workspace(spec)
    model = workspace.model()
    data = workspace.data(model)
    bestfit, errors, covariance = _fit(pyhf, data, model)
    poi = model.config.poi_index
    p0_obs, p0_exp = pyhf.infer.hypotest(0.0, data, model, test_stat="q0", return_expected=True)
    cls_obs, cls_exp = pyhf.infer.hypotest(
        1.0, data, model, test_stat="qtilde", return_expected=True
    )
    parameters: dict[str, list[float] | list[list[float | None]]] = {}
    pulls: list[Pull] = []
    for name in model.config.par_order:
        where = model.config.par_slice(name)
        values, errs = bestfit[where], errors[where]
        if name != STATERROR:
            parameters[name] = [float(values[0]), float(errs[0])]
        if name in NAMED_NUISANCES:
            pulls.append(Pull(name, float(values[0]), float(errs[0])))
        elif name == STATERROR:  # γ per bin, and its pull (γ̂ - 1)/σ_γ ± Δγ/σ_γ
            sigmas = np.asarray(model.config.param_set(name).width(), dtype=float)
            safe = np.where(sigmas > 0, sigmas, np.nan)
            parameters[name] = _pairs(values, errs)
            parameters[f"{name}_pulls"] = _pairs((values - 1.0) / safe, errs / safe)
    init = np.asarray(model.config.suggested_init())
    pre = _group_yields(model, init)
    post = _group_yields(model, bestfit)
    observed = np.asarray(data[: model.config.nmaindata])
    return FitResult(
        model=spec["measurements"][0]["name"].removeprefix("hzz_"),
        mu=float(bestfit[poi]),
        mu_error=float(errors[poi]),
        significance_observed=_significance(float(p0_obs)),
        significance_expected=_significance(float(p0_exp)),
        cls_mu1=float(cls_obs),
        cls_mu1_expected=float(cls_exp),
        pulls=pulls,
        parameters=parameters,
        prefit_yields={
            **{k: float(v.sum()) for k, v in pre.items()},
            "data": float(observed.sum()),
        },
        postfit_yields={k: float(v.sum()) for k, v in post.items()},
        notes=list(notes),
        postfit_bins={k: [float(x) for x in v] for k, v in post.items()},
        postfit_error=[float(x) for x in _total_error(model, bestfit, covariance)],
    )


def fit_notes(document: HistogramDocument) -> list[str]:
    """What the reader of the fit must know about its inputs (stand-ins, missing samples)."""
    notes = []
    if document.generated:
        labels = sorted({g.plain_label for n in document.generated if (g := document.group_of(n))})
        notes.append(
            "simulated stand-ins for "
            + ", ".join(labels)
            + ": their yields are calibrated to the published ones, their m4l shapes are "
            "not the real ones; the fit is a demonstration, not a measurement"
        )
    if document.missing:
        labels = sorted({g.plain_label for n in document.missing if (g := document.group_of(n))})
        notes.append("missing, not in the model: " + ", ".join(labels or document.missing))
    return notes


def fit_document(
    document: HistogramDocument, model: Model = "systematics"
) -> tuple[FitResult, dict[str, Any]]:
    """Build the model from the document alone and fit it: the result and the workspace."""
    spec = workspace_spec(document, model)
    return fit_spec(spec, fit_notes(document)), spec
