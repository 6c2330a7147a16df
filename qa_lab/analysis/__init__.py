"""Analysis, `qa-lab compare`: run folders -> tables (runs.py), per-question scores by category
(breakdown.py), paired bootstrap and seed groups (significance.py), everything computed once
(compare.py) and written as runs.csv and report.html (report.py). Nothing here imports the training run:
a run is read back from its files."""
