"""Sources and cleaning: every source becomes one example table (examples.py), read from files or the Hub
(sources.py) or generated offline (synthetic.py), cleaned with every repair counted (cleaning.py), and cut
into train and validation (splits.py)."""
