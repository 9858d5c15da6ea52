"""The names exporter and inspector share: precisions, file names, manifest keys, op sets, outputs.

Imports nothing heavy (no onnx, no onnxruntime): the exporter, the inspector, the audit and the
CLI all read their constants from here, so a name changes in one place.
"""
from __future__ import annotations

# --------------------------------------------------------------------------- export folder

#: precision name -> file name in an export folder (the order is the export order)
PRECISION_FILES: dict[str, str] = {
    "fp32": "model.onnx",
    "fp16": "model.fp16.onnx",
    "int8-dynamic": "model.int8-dynamic.onnx",
    "int8-static": "model.int8-static.onnx",
}
#: the precisions ``padlens export`` makes, in export order
PRECISIONS: tuple[str, ...] = tuple(PRECISION_FILES)
#: weight-only quantization, named by the bits and scheme of its weights (MatMulNBits bits=4,
#: GatherBlockQuantized bits=4 or int4 DequantizeLinear weights -> int4; 8 bits -> int8;
#: MatMulBnb4 quant_type 1 -> nf4, 0 -> fp4); activations stay float, so padding cannot leak
WEIGHT_ONLY_PRECISIONS: tuple[str, ...] = ("int8-weight", "int4-weight", "nf4-weight", "fp4-weight")
#: ``padlens quantize``'s schemes (exporter/quantize/): int8-static (the export's recipe), then weight-only
QUANTIZE_SCHEMES: tuple[str, ...] = (PRECISIONS[-1], *WEIGHT_ONLY_PRECISIONS[:2])
#: added to a weight-only name when the graph computes in fp16 (transformers.js q4f16: "int4-weight+fp16")
FP16_COMPUTE_SUFFIX = "+fp16"
#: every precision name read from a graph (never from a file name): the export precisions, then
#: weight-only ones, each of which may carry FP16_COMPUTE_SUFFIX
READ_PRECISIONS: tuple[str, ...] = PRECISIONS + WEIGHT_ONLY_PRECISIONS

#: sentence-transformers' pooling modes, all of which padlens pools with (``--pooling``); "a+b"
#: concatenates modes, as sentence-transformers does for a list of modes
POOLING_MODES: tuple[str, ...] = ("mean", "cls", "max", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")

#: the manifest's file name in an export folder
MANIFEST = "padlens.json"
#: version of the manifest's layout
MANIFEST_FORMAT = 1
#: top-level keys of padlens.json, in the order they are written ("calibration" only for int8-static;
#: "backend": optimum or torch, the export backend that wrote the fp32 file)
MANIFEST_KEYS: tuple[str, ...] = (
    "format", "padlens_version", "source", "recipe", "architecture", "num_layers", "hidden_size",
    "max_position_embeddings", "vocab_size", "pad_token_id", "pad_token_type_id", "padding_side",
    "pooling", "normalize", "tokenizer_files", "input_names", "output_names", "precisions",
    "validation", "versions", "backend", "calibration",
)
#: keys of one entry of the manifest's "precisions" object ("quantization" only for int8)
PRECISION_ENTRY_KEYS: tuple[str, ...] = ("file", "bytes", "quantization")

# --------------------------------------------------------------------------- graph outputs

#: the token-state output every export keeps
LAST_HIDDEN_STATE = "last_hidden_state"
#: hidden_states.0 is the embedding output, hidden_states.1 … L the encoder blocks' outputs
HIDDEN_STATES_PREFIX = "hidden_states."


def hidden_state_name(index: int) -> str:
    """The graph output name of layer ``index`` (0 = embeddings)."""
    return f"{HIDDEN_STATES_PREFIX}{index}"


def output_names(num_layers: int) -> list[str]:
    """``last_hidden_state`` then ``hidden_states.0`` (embeddings) … ``hidden_states.L``."""
    return [LAST_HIDDEN_STATE] + [hidden_state_name(i) for i in range(num_layers + 1)]


# --------------------------------------------------------------------------- quantization ops

#: Ops that compute an activation's quantization scale at run time, over a whole tensor.
DYNAMIC_QUANT_OPS: frozenset[str] = frozenset({
    "DynamicQuantizeLinear", "DynamicQuantizeMatMul", "DynamicQuantizeLSTM", "QAttention",
    "QEmbedLayerNormalization",
})
#: Integer ops that are dynamic when one of their inputs comes from DynamicQuantizeLinear.
INTEGER_OPS: frozenset[str] = frozenset({"MatMulInteger", "ConvInteger", "MatMulIntegerToFloat"})
#: Ops of a statically quantized graph: fixed scales stored in the file (QDQ or QOperator form).
STATIC_QUANT_OPS: frozenset[str] = frozenset({
    "QuantizeLinear", "QLinearMatMul", "QLinearConv", "QLinearAdd", "QLinearMul", "QLinearConcat",
    "QLinearSoftmax", "QLinearSigmoid", "QLinearLeakyRelu", "QLinearAveragePool",
    "QLinearGlobalAveragePool", "QLinearReduceMean", "QLinearWhere", "QGemm", "QOrderedMatMul",
})
