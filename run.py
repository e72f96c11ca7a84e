"""Entry point: `python run.py strategy=ewc scenario=class_il seed=0` (Hydra overrides; `-m` sweeps)."""

import sys

import hydra
from omegaconf import DictConfig

from lepton_research.config import register

register()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    from lepton_research.cli import run
    from lepton_research.config import ConfigError
    from lepton_research.data.idx import DataFileError

    try:
        return run(cfg)["final/avg_acc"]
    except (ConfigError, DataFileError) as e:  # the user's input: a clear message, no traceback
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
