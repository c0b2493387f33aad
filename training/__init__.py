"""Re-fine-tuning, evaluation gate, drift detection and the retraining scheduler."""
