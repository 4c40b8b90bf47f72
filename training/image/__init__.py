"""image model training and evaluation."""
