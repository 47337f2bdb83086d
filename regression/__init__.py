"""Predict a film's release year from its poster embedding.

dataset (vectors and years out of Qdrant, a seeded split) -> head (the Keras model) and
baselines -> metrics and plots -> train (the whole run, saved) -> predict (a new poster).
"""
