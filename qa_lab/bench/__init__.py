"""The benchmark, `python -m qa_lab.bench`: qa-lab's own training run against the seeds' pipeline
(reference.py) on the same data, weights and steps (benchmark.py), with the machine's peak, FLOPs and
memory measured beside them (measure.py), written as BENCHMARKS.md and one JSON line (report.py)."""
