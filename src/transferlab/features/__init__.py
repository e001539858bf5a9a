"""Feature extraction: FeatureExtractor, pooling, L2, the on-disk cache."""
