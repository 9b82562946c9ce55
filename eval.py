"""`python eval.py ckpt_path=<run dir or .ckpt> [dataset=<name> dataset.path=...]`: score a checkpoint."""

import hydra
from omegaconf import DictConfig

from modlab.cli import one_line_errors


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
@one_line_errors
def main(cfg: DictConfig):
    from modlab.evaluation.score_checkpoint import run

    return run(cfg)


if __name__ == "__main__":
    main()
