"""Pure statistics: pad metrics and their mergeable accumulators, in-graph statistics, pooling.

May import: numpy, onnx helpers, padlens.errors, contract. Never another inspector package.
"""
