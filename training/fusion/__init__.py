"""fusion model training and evaluation."""
