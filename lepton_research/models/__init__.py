"""Models: each factory takes ``in_shape`` and ``out_features`` from the stream and scenario."""
