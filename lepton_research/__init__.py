"""lepton-research: continual learning with Hydra configs, Lightning training and MLflow tracking."""

__version__ = "0.1.0"
