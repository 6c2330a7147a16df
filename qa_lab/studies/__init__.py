"""Studies: the Hydra plugin behind `python run.py -m sweep=<preset>` (sweeper.py), its loop of claiming,
running and telling trials (loop.py), and a run's side of its trial: per-epoch reports and pruning (trial.py)."""
