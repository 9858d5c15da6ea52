"""Weight-only quantization (``MatMulNBits``): int8 or int4 weights, float activations, padding-invariant by construction."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from padlens.exporter.quantize.plan import Plan


@dataclass(frozen=True)
class WeightRecipe:
    """How a weight-only scheme is made: ONNX Runtime's ``MatMulNBitsQuantizer`` (RTN).

    Each MatMul with a constant weight becomes a ``MatMulNBits`` whose weights are stored in
    ``bits`` bits, one scale per ``block_size`` inputs of each output channel; activations stay
    float, so no value depends on another row or on the pads.

    Attributes:
        bits: 8 or 4.
        block_size: weights sharing one scale along the input dimension.
        symmetric: zero point fixed at the middle of the range (no stored zero points).
        accuracy_level: ORT's compute type for the activations (None: float, 4: int8 compute).
    """

    bits: int
    block_size: int = 32
    symmetric: bool = True
    accuracy_level: int | None = None

    def to_dict(self) -> dict:
        out = asdict(self)
        out.update(method="weight-only MatMulNBits (onnxruntime.quantization.matmul_nbits_quantizer, RTN)",
                   activations="float")
        return out


WEIGHT_RECIPES = {"int8-weight": WeightRecipe(bits=8), "int4-weight": WeightRecipe(bits=4)}


def quantize_weights(model, recipe: WeightRecipe, plan: Plan):
    """A weight-only copy of ``model`` (an onnx.ModelProto with its weights loaded): every
    MatMul with a constant weight but those ``plan`` keeps float; returns (model, what was done)."""
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    from padlens.exporter.quantize.recipe import hide_preprocess_hint

    config = DefaultWeightOnlyQuantConfig(block_size=recipe.block_size, is_symmetric=recipe.symmetric,
                                          accuracy_level=recipe.accuracy_level, bits=recipe.bits)
    quantizer = MatMulNBitsQuantizer(model, bits=recipe.bits, block_size=recipe.block_size,
                                     is_symmetric=recipe.symmetric, accuracy_level=recipe.accuracy_level,
                                     nodes_to_exclude=list(plan.kept_float), algo_config=config)
    with hide_preprocess_hint():
        quantizer.process()
    out = quantizer.model.model
    done = recipe.to_dict()
    done["quantized_nodes"] = sum(1 for n in out.graph.node if n.op_type == "MatMulNBits")
    done["float_nodes"] = [n.name for n in out.graph.node if n.op_type == "MatMul"]
    done["kept_float_why"] = dict(plan.kept_float)
    return out, done


def write_weight_only(src: Path, dst: Path, recipe: WeightRecipe, plan: Plan) -> dict:
    """Quantize the weights of ``src`` into ``dst`` (external data past ~1.8 GB).

    The source's weights are loaded into memory once (external data too: the quantizer needs
    the float values); the quantized copy is 1/4 (int8) or 1/8 (int4) of their size.
    """
    import onnx

    from padlens.inspector.model.expose import save_model

    model = onnx.load(str(src))
    out, done = quantize_weights(model, recipe, plan)
    del model
    save_model(out, dst)
    return done
