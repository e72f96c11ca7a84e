"""Hydra callbacks (conf/config.yaml, ``hydra.callbacks``): at the end of a multirun, name the jobs whose results
MLflow could not record and give the one command that uploads them."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.experimental.callback import Callback

log = logging.getLogger(__name__)

UNLOGGED = "UNLOGGED.txt"  # the marker tracking.Tracker writes into a run folder when the store goes away


class ReportUnlogged(Callback):
    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        missing = sorted(p.parent for p in sweep_dir.glob(f"**/{UNLOGGED}"))
        if not missing:
            return
        log.error(
            "%d job(s) of this sweep could not be recorded in MLflow; their results are in their folders:\n  %s\n"
            "upload them when the store is back:\n  python -m lepton_research.upload %s --uri %s",
            len(missing),
            "\n  ".join(map(str, missing)),
            " ".join(map(str, missing)),
            config.tracking.uri or "<your tracking uri>",
        )
