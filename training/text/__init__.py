"""text model training and evaluation."""
