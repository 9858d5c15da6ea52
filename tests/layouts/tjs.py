"""transformers.js / onnx-community and fastembed folders built from a tiny fp32 file with the
public tools those publishers use (ORT's MatMulNBitsQuantizer, MatMulBnb4Quantizer,
quantize_dynamic, onnxruntime.transformers.float16); no torch, so the inspector tests can use it."""
from __future__ import annotations

import shutil
from pathlib import Path

#: transformers.js file -> how it is made from model.onnx (DESIGN.md: "transformers.js folders")
VARIANTS = ("model", "model_fp16", "model_quantized", "model_q4", "model_q4f16", "model_bnb4", "model_q8nbits")


def fp16(src: Path, dst: Path) -> None:
    """transformers.js' fp16: convert_float_to_float16(keep_io_types=True)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    onnx.save(convert_float_to_float16(onnx.load(str(src)), keep_io_types=True), str(dst))


def nbits(src: Path, dst: Path, bits: int = 4, block_size: int = 32) -> None:
    """MatMulNBits (symmetric, block 32): transformers.js q4, fastembed's 8-bit Qwen3 weights."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    config = DefaultWeightOnlyQuantConfig(block_size=block_size, is_symmetric=True, bits=bits)
    quant = MatMulNBitsQuantizer(onnx.load(str(src)), algo_config=config)
    quant.process()
    quant.model.save_model_to_file(str(dst))


def bnb4(src: Path, dst: Path) -> None:
    """MatMulBnb4 NF4, block 64: transformers.js bnb4."""
    import onnx
    from onnxruntime.quantization.matmul_bnb4_quantizer import MatMulBnb4Quantizer

    quant = MatMulBnb4Quantizer(onnx.load(str(src)), MatMulBnb4Quantizer.NF4, 64)
    quant.process()
    quant.model.save_model_to_file(str(dst))


def dynamic_int8(src: Path, dst: Path) -> None:
    """transformers.js' quantized/int8/uint8: ORT dynamic int8."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QUInt8)


def build(src_dir: Path, out: Path, variants=VARIANTS) -> Path:
    """``out``: tokenizer files at the top, ``onnx/<variant>.onnx`` made from ``src_dir/model.onnx``."""
    onnx_dir = out / "onnx"
    onnx_dir.mkdir(parents=True, exist_ok=True)
    for f in src_dir.iterdir():
        if f.is_file() and f.suffix != ".onnx":
            shutil.copy(f, out / f.name)
    src = onnx_dir / "model.onnx"
    shutil.copy(src_dir / "model.onnx", src)
    makers = {"model_fp16": fp16, "model_quantized": dynamic_int8, "model_q4": nbits, "model_bnb4": bnb4,
              "model_q8nbits": lambda s, d: nbits(s, d, bits=8)}
    for name in variants:
        if name in makers:
            makers[name](src, onnx_dir / f"{name}.onnx")
    if "model_q4f16" in variants:
        nbits(src, onnx_dir / "q4.tmp.onnx")
        fp16(onnx_dir / "q4.tmp.onnx", onnx_dir / "model_q4f16.onnx")
        (onnx_dir / "q4.tmp.onnx").unlink()
    if "model" not in variants:
        src.unlink()
    return out
