"""Running a model: ONNX Runtime sessions (the one owner of InferenceSession), the encoder, feeds, fixed shapes, the embedding model.

May import: model/, inputs/, stats/, contract. Never report/, probe/, audit/, ray/.
"""
