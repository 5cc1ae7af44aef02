"""Training hyper-parameters, kept free of numpy and TensorFlow so that the pipeline definition
and the CLI can read the defaults without importing either."""

from __future__ import annotations

from dataclasses import dataclass

from components.common.parameters import DEFAULTS, check_all


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters; defaults and checks are the pipeline parameters' own."""

    epochs: int = DEFAULTS["epochs"]
    batch_size: int = DEFAULTS["batch_size"]
    learning_rate: float = DEFAULTS["learning_rate"]
    seed: int = DEFAULTS["seed"]
    train_limit: int = DEFAULTS["train_limit"]  # only the first N training examples (0 = all)
    augment: bool = True  # random shifts of up to 2 pixels

    def __post_init__(self) -> None:
        """Refuse out-of-range values, naming the parameter and the bound (ParameterError):
        a TrainConfig that exists is valid, so nothing checks it again."""
        names = ("epochs", "batch_size", "learning_rate", "seed", "train_limit")
        check_all({name: getattr(self, name) for name in names})
