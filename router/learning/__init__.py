"""The learning loop: feedback and judge labels, shadow sampling, retraining, and the savings report."""
