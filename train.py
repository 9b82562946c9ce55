"""`python train.py [overrides]`: train one run; `python train.py -m hparams_search=<name>`: a sweep."""

import hydra
from omegaconf import DictConfig

from modlab.cli import one_line_errors


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@one_line_errors
def main(cfg: DictConfig):
    from modlab.training.train import run

    return run(cfg)


if __name__ == "__main__":
    main()
