"""k-means and the adjusted Rand index with scikit-learn (the ``probe`` extra), on plain arrays.

The only study module that imports scikit-learn. Embeddings are L2-normalised before k-means
(cosine geometry, what similarity search and most clustering of sentence embeddings use).
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

from padlens.inspector.stats.pooling import l2_normalize

N_INIT = 10
"""k-means restarts (fixed seeds): the best of them by inertia is kept."""
BLAS_THREADS = 1
"""BLAS threads while clustering: small problems, shared cores (as ``probe.fit``)."""


def kmeans(x: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Cluster ids [n] of the rows of ``x`` (L2-normalised first) into ``k`` clusters."""
    rows = l2_normalize(np.asarray(x, dtype=np.float64))
    with threadpool_limits(limits=BLAS_THREADS, user_api="blas"):
        return KMeans(n_clusters=int(k), n_init=N_INIT, random_state=int(seed)).fit_predict(rows)


def ari(a, b) -> float:
    """The adjusted Rand index between two assignments (1 identical up to renaming, ~0 chance)."""
    return float(adjusted_rand_score(np.asarray(a), np.asarray(b)))


def moved_share(reference, other) -> float:
    """Share of items in another cluster than in ``reference``, after matching the clusters of
    ``other`` to those of ``reference`` one to one so as to keep the most items together."""
    reference, other = np.asarray(reference), np.asarray(other)
    if reference.size == 0:
        return float("nan")
    ref_ids, ref_index = np.unique(reference, return_inverse=True)
    other_ids, other_index = np.unique(other, return_inverse=True)
    table = np.zeros((ref_ids.size, other_ids.size), dtype=np.int64)
    np.add.at(table, (ref_index, other_index), 1)
    rows, cols = linear_sum_assignment(-table)
    return float(1.0 - table[rows, cols].sum() / reference.size)
