"""speech model training and evaluation."""
