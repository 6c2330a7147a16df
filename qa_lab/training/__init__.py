"""The training run: recipe.py reads as the experiment's outline (setup phases in setup.py, the loop in
loop.py); state.py is where the loop stands, context.py what its hooks see, hooks/ everything a run writes
and reports, checkpoint.py the crash-recovery files, checks.py the config check before any work."""
