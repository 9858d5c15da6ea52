"""What goes in: texts, tokenizers, the MODEL arguments resolved to files, lengths and the shared option checks.

May import: padlens.errors, padlens.inspector.contract, stats/ (pooling configuration). Never model/, runtime/,
report/, probe/, audit/, ray/, inspect, embed.
"""
