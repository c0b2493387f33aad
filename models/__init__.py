"""The sentiment/topic model, its batched inference engine and the model registry."""
