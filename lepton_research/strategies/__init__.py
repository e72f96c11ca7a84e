"""Continual-learning strategies: one file each, configured by ``conf/strategy/<name>.yaml``."""
