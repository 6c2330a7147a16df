"""qa-lab: fine-tune and evaluate extractive question-answering models."""

__version__ = "0.1.0"
