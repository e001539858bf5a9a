"""Linear classifiers on deep features, evaluation, the saved-model format."""
