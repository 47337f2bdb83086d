"""Poster images to VGG16 embeddings: image decoding (`images`) and the model (`model`).

`spec` is importable without TensorFlow, so a store can be checked against an embedding
before the (slow) model is loaded.
"""
