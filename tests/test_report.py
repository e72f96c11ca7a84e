"""The report reads runs back from MLflow by tags, aggregates seeds and gives a verdict per cell."""

import math

import yaml

from lepton_research import cli, report
from tests.conftest import compose_cfg


def test_cell_statistics_and_verdict():
    c = report.Cell("ewc", "task_il", (98.64, 0.22), [97.0, 99.0, 98.0])
    assert c.mean == 98.0 and c.n == 3
    assert math.isclose(c.sem, 1.0 / math.sqrt(3))
    assert c.verdict(2.0) == "match"  # 0.64 away, allowed max(0.44, 1.15, 2)
    assert report.Cell("x", "y", (50.0, 0.1), [40.0, 41.0]).verdict(2.0) == "MISS"
    assert report.Cell("x", "y", (50.0, 0.1), []).verdict(2.0) == "no runs"


def test_per_seed_table_aligns_seeds_across_methods():
    expected = {"scenarios": ["domain_il"]}
    cells = [
        report.Cell("naive", "domain_il", (59.0, 2.0), [60.0, 70.5], ["2", "10"]),
        report.Cell("ewc", "domain_il", (64.0, 1.9), [61.25], ["10"]),
    ]
    lines = report.per_seed(expected, cells)
    assert "| method | seed 2 | seed 10 |" in lines  # numeric order, not "10" < "2"
    assert "| naive | 60.00 | 70.50 |" in lines
    assert "| ewc | - | 61.25 |" in lines


def test_report_from_mlflow(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    for strategy in ("naive", "joint"):
        for seed in (0, 1):
            cfg = compose_cfg(
                [
                    "benchmark=split_mnist_5k",
                    f"strategy={strategy}",
                    f"seed={seed}",
                    "train.iterations=60",
                    "benchmark.n_tasks=2",
                    f"tracking.uri={uri}",
                    "tracking.experiment=paper",
                ]
            )
            cli.run(cfg, output_dir=tmp_path / f"{strategy}{seed}")
    expected = {
        "paper": "a test paper",
        "source": "table 1",
        "mlflow_experiment": "paper",
        "benchmark": "split_mnist_5k",
        "metric": "final/avg_acc",
        "scale": 100,
        "tolerance_points": 2.0,
        "scenarios": ["class_il"],
        "cells": {"naive": {"class_il": [48.0, 1.5]}, "joint": {"class_il": [0.0, 1.0]}},
    }
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "expected.yaml").write_text(yaml.safe_dump(expected))
    assert report.main([str(tmp_path / "exp"), "--uri", uri]) == 0
    text = (tmp_path / "exp" / "report.md").read_text()
    assert (tmp_path / "exp" / "report.png").stat().st_size > 0
    cells = {(c.strategy, c.scenario): c for c in report.collect(expected, uri)}
    assert cells[("naive", "class_il")].n == 2 and cells[("joint", "class_il")].n == 2
    # naive class-IL on 2 tasks keeps only the last task: a little under 50 %; joint is far above the fake "0.0"
    assert cells[("naive", "class_il")].verdict(2.0) == "match"
    assert cells[("joint", "class_il")].verdict(2.0) == "MISS"
    assert "| naive |" in text and "1 of 2 cells match" in text
    # per seed: one column per seed, each figure the run's own final/avg_acc x 100
    naive = cells[("naive", "class_il")]
    assert naive.seeds == ["0", "1"]
    assert "| method | seed 0 | seed 1 |" in text
    assert f"| naive | {naive.values[0]:.2f} | {naive.values[1]:.2f} |" in text


def test_sweep_again_skips_finished_cells(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    overrides = [
        "benchmark=split_mnist_5k",
        "train.iterations=10",
        "benchmark.n_tasks=2",
        f"tracking.uri={uri}",
        "tracking.experiment=again",
        "tracking.skip_finished=true",
    ]
    first = cli.run(compose_cfg(overrides), output_dir=tmp_path / "a")
    second = cli.run(compose_cfg(overrides), output_dir=tmp_path / "b")
    assert second["skipped"] and second["run_id"] == first["run_id"]
    assert second["final/avg_acc"] == first["final/avg_acc"]
    third = cli.run(compose_cfg([*overrides, "seed=1"]), output_dir=tmp_path / "c")
    assert "skipped" not in third
