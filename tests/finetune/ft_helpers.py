"""Shared settings of the fine-tuning tests."""

FAST = dict(backbone="digits_cnn", weights="none", batch_size=8, test_fraction=0.25, workers=0, device="cpu")
