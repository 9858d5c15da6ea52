"""Fit one linear probe with scikit-learn: grouped CV for regularisation, a shuffled control, a bootstrap.

The only module that imports scikit-learn (the ``probe`` extra). Everything here works on
plain arrays: states ``X`` [n, D], targets ``y`` ([n] or [n, D]), the text each state came
from (``groups``) and whether that text is a test text. Splits are by text, so no text has
states on both sides, and the regularisation strength is chosen by cross-validation over
the training texts only (GroupKFold), never looking at the test texts.
"""
from __future__ import annotations

import warnings

import numpy as np
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge, RidgeClassifier
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from padlens.inspector.stats.cosine import row_cosines

ALPHAS = tuple(float(a) for a in np.logspace(-1, 5, 7))
"""Ridge penalties tried by cross-validation (on standardised states)."""
FOLDS = 5
"""Cross-validation folds over the training texts (fewer when there are fewer texts)."""
BOOTSTRAP = 1000
"""Resamples of the test texts for the 95% interval."""
BLAS_THREADS = 1
"""BLAS threads while fitting: these small solves run ~100x slower when BLAS spreads them over
busy cores (measured on 2 shared cores), and gain nothing from more threads."""
KINDS = ("regression", "content", "classification")
METRICS = {"regression": "r2", "content": "cosine", "classification": "accuracy"}


def evaluate(kind: str, X: np.ndarray, y: np.ndarray, groups: np.ndarray, test: np.ndarray,
             y_control: np.ndarray, seed: int = 0) -> dict:
    """Fit the probe and its control on the training texts, score both on the test texts.

    ``kind``: "regression" (R²), "content" (multi-output ridge, mean cosine between predicted
    and true vectors) or "classification" (ridge classifier, accuracy). ``y_control`` is
    ``y`` shuffled by the caller (between texts, within the training and within the test
    texts): the control probe learns it with the same pipeline and CV and is scored on the
    test texts' shuffled targets, the control task (Hewitt & Liang 2019). Scored against the
    true targets instead, a control picks up chance correlations of the shuffle with a strong
    signal (R² ≈ 2ρ, ρ ~ 1/√texts) and swings by ±0.1 on a few hundred texts; on its own
    task, with each side's targets kept, it sits at the baseline. Returns the score,
    control, baseline (training-mean / majority predictor), the score's and the
    selectivity's 95% bootstrap intervals over test texts, counts and the chosen penalty.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown probe kind {kind!r}")
    train = ~test
    with threadpool_limits(limits=BLAS_THREADS, user_api="blas"):
        model = _fit(kind, X[train], y[train], groups[train])
        control = _fit(kind, X[train], y_control[train], groups[train])
        pred, pred_control = model.predict(X[test]), control.predict(X[test])
    truth = y[test]
    pred_base = _baseline(kind, y[train], int(test.sum()))
    weights = _bootstrap_weights(groups[test], seed)
    score, score_boot = _scored(kind, truth, pred, weights)
    ctrl, ctrl_boot = _scored(kind, y_control[test], pred_control, weights)
    base, _ = _scored(kind, truth, pred_base, weights[:0])
    return {
        "score": score, "control": ctrl, "baseline": base, "selectivity": score - ctrl,
        "ci": _interval(score_boot), "selectivity_ci": _interval(score_boot - ctrl_boot),
        "n_train": int(np.unique(groups[train]).size), "n_test": int(np.unique(groups[test]).size),
        "n_train_states": int(train.sum()), "n_test_states": int(test.sum()), "dims": int(X.shape[1]),
        "alpha": _alpha(model), "control_alpha": _alpha(control),
        "classes": int(np.unique(y[train]).size) if kind == "classification" else None,
    }


# ---------------------------------------------------------------- fitting

def _estimator(kind: str):
    head = RidgeClassifier() if kind == "classification" else Ridge()
    return make_pipeline(StandardScaler(), head)


def _fit(kind: str, X: np.ndarray, y: np.ndarray, groups: np.ndarray):
    """The pipeline refitted on every training state with the penalty grouped CV chose."""
    folds = min(FOLDS, int(np.unique(groups).size))
    splits = list(GroupKFold(n_splits=folds).split(X, y, groups))
    search = GridSearchCV(_estimator(kind), {f"{_head_name(kind)}__alpha": list(ALPHAS)},
                          cv=splits, scoring="accuracy" if kind == "classification" else None,
                          error_score=np.nan, n_jobs=1)
    with warnings.catch_warnings():
        # a fold missing a class, or a constant fold, only costs that fold's score
        warnings.filterwarnings("ignore", category=UserWarning)
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        # the states are checked finite before any fit; the parameters are padlens' own: skipping
        # scikit-learn's checks of both takes ~9 % off a probe's ~35 small fits per target
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            search.fit(np.asarray(X, dtype=np.float64), y)
    return search.best_estimator_


def _head_name(kind: str) -> str:
    return "ridgeclassifier" if kind == "classification" else "ridge"


def _alpha(model) -> float:
    return float(model[-1].alpha)


def _baseline(kind: str, y_train: np.ndarray, n: int) -> np.ndarray:
    """What a probe that ignores the state predicts: the training mean, or its majority class."""
    if kind == "classification":
        values, counts = np.unique(y_train, return_counts=True)
        return np.full(n, values[np.argmax(counts)])
    mean = np.asarray(y_train, dtype=np.float64).mean(axis=0)
    return np.broadcast_to(mean, (n,) + mean.shape).copy()


# ---------------------------------------------------------------- scores

def _bootstrap_weights(groups: np.ndarray, seed: int, n: int = BOOTSTRAP) -> np.ndarray:
    """[n, states] weights: how often each state's text was drawn in each resample of texts."""
    texts, index = np.unique(groups, return_inverse=True)
    rng = np.random.default_rng([int(seed), 7])
    counts = rng.multinomial(texts.size, np.full(texts.size, 1.0 / texts.size), size=n)
    return counts[:, index].astype(np.float64)


def _scored(kind: str, truth: np.ndarray, pred: np.ndarray, weights: np.ndarray) -> tuple[float, np.ndarray]:
    """The metric on every test state, and on each bootstrap resample (rows of ``weights``)."""
    ones = np.ones((1, len(truth)))
    every = np.vstack([ones, weights])
    if kind == "regression":
        values = weighted_r2(np.asarray(truth, np.float64), np.asarray(pred, np.float64), every)
    else:
        per_state = (row_cosines(truth, pred) if kind == "content"
                     else (np.asarray(truth) == np.asarray(pred)).astype(np.float64))
        values = every @ per_state / every.sum(axis=1)
    return float(values[0]), values[1:]


def weighted_r2(truth: np.ndarray, pred: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """R² = 1 − Σw(y−ŷ)² / Σw(y−ȳ_w)² for each row of ``weights`` [k, n]; NaN where y is constant."""
    total = weights.sum(axis=1)
    mean = weights @ truth / total
    residual = weights @ (truth - pred) ** 2
    spread = weights @ truth ** 2 - total * mean ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(spread > 1e-12 * np.maximum(total, 1.0), 1.0 - residual / spread, np.nan)


def _interval(values: np.ndarray) -> list[float]:
    """The central 95% of the bootstrap values ([lo, hi]; NaN where undefined)."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return [float("nan"), float("nan")]
    lo, hi = np.percentile(values, [2.5, 97.5])
    return [float(lo), float(hi)]
