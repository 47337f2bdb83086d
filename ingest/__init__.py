"""Catalog + poster folder -> embeddings in the store (`catalog`, then `pipeline`)."""
