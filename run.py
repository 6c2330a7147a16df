"""qa-lab's entry point: `python run.py [group=option ...] [key=value ...]`, or `-m` for a sweep."""

import hydra
from omegaconf import DictConfig

from qa_lab.core.conf import register_resolvers
from qa_lab.entry import run_experiment

register_resolvers()


@hydra.main(config_path="conf", config_name="config", execution_whitelist=["qa_lab.*"])
def main(cfg: DictConfig) -> float:
    return run_experiment(cfg)


if __name__ == "__main__":
    main()
