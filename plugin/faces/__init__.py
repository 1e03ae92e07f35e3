"""Face models: scanning photos into the embedding cache, importing a host's
faceset, and validating bundles the way roop-unleashed loads them.

Everything here needs the optional ``era-split[scan]`` extra (insightface and
onnxruntime); nothing else in the project imports this package.
"""
