"""The ONNX file, read-only: load it safely, locate its layers, read its structure, expose outputs, refer to weights in place.

May import: padlens.errors, padlens.inspector.contract. Never any other inspector package: it knows nothing of sessions, texts or results.
"""
