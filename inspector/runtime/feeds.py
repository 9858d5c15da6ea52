"""Graph inputs filled from a padded batch: one dict of arrays per run, cast to each input's type."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from padlens.errors import ModelLoadError
from padlens.inspector.inputs.tokenize import Batch
from padlens.inspector.model.loader import CACHE_ROLE

# what a graph input may be fed as; float and bool only occur for odd attention masks
FEED_DTYPES = {"int64": np.int64, "int32": np.int32, "float32": np.float32,
               "float16": np.float16, "bool": np.bool_}


def make_feeds(inputs: Sequence, batch: Batch) -> dict[str, np.ndarray]:
    """Fill each graph input (anything with ``name``, ``role``, ``dtype``) from ``batch``.

    token_type_ids carry the tokenizer's types and its pad token type on pads; position_ids
    follow the mask (``tokenize.mask_positions``: 0..n-1 on real tokens, either side); every array
    is cast to the input's dtype (int64, int32, or float/bool for an attention mask given as such).
    A past KV cache (role ``past_key_values``) is fed empty: [batch, kv_heads, 0, head_dim] in its
    declared dtype, so the mask (past + current tokens) covers the batch's tokens alone and the graph
    computes the plain forward pass.
    """
    arrays = {
        "input_ids": batch.input_ids,
        "attention_mask": batch.attention_mask,
        "token_type_ids": batch.token_type_ids,
        "position_ids": batch.position_ids,
    }
    feeds = {}
    for spec in inputs:
        if spec.role == CACHE_ROLE:
            feeds[spec.name] = empty_cache(spec, batch.shape[0])
            continue
        if spec.role not in arrays:
            raise ModelLoadError(f"graph input {spec.name!r} has role {spec.role!r}, which padlens cannot fill")
        dtype = FEED_DTYPES.get(spec.dtype)
        if dtype is None:
            raise ModelLoadError(f"graph input {spec.name!r} has type {spec.dtype}; padlens feeds "
                                 f"{', '.join(FEED_DTYPES)}")
        feeds[spec.name] = np.ascontiguousarray(arrays[spec.role], dtype=dtype)
    return feeds


def empty_cache(spec, rows: int) -> np.ndarray:
    """An empty past cache for ``rows`` texts: [rows, kv_heads, 0, head_dim] in the declared dtype."""
    heads, size = spec.cache_shape
    return np.zeros((rows, heads, 0, size), dtype=FEED_DTYPES[spec.dtype])
