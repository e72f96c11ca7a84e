"""Entry point: `python run.py strategy=ewc scenario=class_il seed=0` (Hydra overrides; `-m` sweeps)."""

import hydra
from omegaconf import DictConfig

from lepton_research.config import register

register()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    from lepton_research.cli import run

    return run(cfg)["final/avg_acc"]


if __name__ == "__main__":
    main()
