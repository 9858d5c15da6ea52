"""The real all-MiniLM-L6-v2 export: which precisions pass the audit, and embed vs sentence-transformers."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow

#: sentence-transformers' embeddings of a texts file, in a subprocess: torch stays out of this process
REFERENCE = """
import sys
import numpy as np
from sentence_transformers import SentenceTransformer
folder, texts, out = sys.argv[1:]
lines = open(texts, encoding="utf-8").read().splitlines()
np.save(out, SentenceTransformer(folder, device="cpu").encode(lines, normalize_embeddings=True, batch_size=16))
"""


@pytest.fixture(scope="session")
def minilm_audit(minilm_all):
    from padlens.inspector.audit import audit

    return audit([str(minilm_all.path)], limit=8)


def _checks(result, model):
    return {c.name: c for c in result.checks if c.model == model}


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8-static"])
def test_fp32_fp16_and_int8_static_pass_every_error_level_check(minilm_audit, precision):
    failed = [c for c in _checks(minilm_audit, f"minilm/{precision}").values()
              if c.severity == "error" and not c.passed]
    assert not failed, [c.detail for c in failed]


def test_int8_dynamic_fails_padding_invariance_naming_dynamic_quantize_linear(minilm_audit):
    checks = _checks(minilm_audit, "minilm/int8-dynamic")
    c = checks["padding_invariance"]
    assert not c.passed and c.value < 0.999
    assert "DynamicQuantizeLinear" in c.detail
    assert not checks["dynamic_activation_quantization"].passed
    assert not minilm_audit.passed


def test_embed_matches_sentence_transformers_encode(minilm_all, tmp_path):
    from padlens.inspector.embed import embed
    from padlens.inspector.inputs.texts import default_corpus
    from padlens.models import get_recipe, package_folder

    texts = default_corpus()[:64]
    f = tmp_path / "texts.txt"
    f.write_text("\n".join(texts) + "\n")
    embed(minilm_all.path, f, tmp_path / "e.npy", batch_size=16)
    ours = np.load(tmp_path / "e.npy")
    folder = package_folder(get_recipe("minilm-l6").source)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", REFERENCE, str(folder), str(f), str(tmp_path / "st.npy")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    theirs = np.load(tmp_path / "st.npy")
    assert ours.shape == theirs.shape == (64, 384)
    cos = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    assert cos.min() > 1 - 1e-5
