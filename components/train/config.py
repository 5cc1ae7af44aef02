"""Training hyper-parameters, and the one way they are built from the pipeline's parameters.

The train step (component.py), a TFJob replica (distributed.py) and a Katib trial
(components/tune/trial.py) all make their TrainConfig here: from the step's arguments by name,
or from `--epochs=...` flags that `as_flags` writes and `add_flags` declares, with the types,
defaults and checks of the one parameter table. Free of numpy and TensorFlow, so the pipeline
definition and the CLI can read the defaults without importing either.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass

from components.common.parameters import BY_NAME, DEFAULTS, check_all

# the table names of training's parameters
FIELDS = (
    "epochs", "batch_size", "learning_rate", "seed", "train_limit", "validation_split", "augment",
)  # fmt: skip


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters; defaults and checks are the pipeline parameters' own."""

    epochs: int = DEFAULTS["epochs"]
    batch_size: int = DEFAULTS["batch_size"]
    learning_rate: float = DEFAULTS["learning_rate"]
    seed: int = DEFAULTS["seed"]
    train_limit: int = DEFAULTS["train_limit"]  # only the first N training examples
    # the share of those N held out (the last ones) to measure validation accuracy
    validation_split: float = DEFAULTS["validation_split"]
    augment: str = DEFAULTS["augment"]  # none, shift (up to 2 pixels), robust (model._robust)
    dropout: float = 0.2  # before the classifier; 0 makes a training step a pure function
    deterministic: bool = True  # TensorFlow's ops too (model.seed_everything)

    def __post_init__(self) -> None:
        """Refuse out-of-range values, naming the parameter and the bound (ParameterError):
        a TrainConfig that exists is valid, so nothing checks it again."""
        check_all(self.values())

    @classmethod
    def from_values(cls, values: Mapping[str, object]) -> TrainConfig:
        """The config from parameter values by name (a step's `locals()`, parsed flags); the
        names that are not training's are ignored, the missing ones take the defaults."""
        return cls(**{name: values[name] for name in FIELDS if name in values})

    def values(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in FIELDS}

    def as_flags(self) -> list[str]:
        """`--epochs=3 --batch-size=128 ...`: what add_flags parses back to this config."""
        return [f"--{name.replace('_', '-')}={value}" for name, value in self.values().items()]


def add_flags(parser: argparse.ArgumentParser, *, required: tuple[str, ...] = ()) -> None:
    """Declare `--epochs`, `--batch-size`, ... with the table's types and defaults."""
    for name in FIELDS:
        param = BY_NAME[name]
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=param.type,
            default=param.default,
            required=name in required,
            help=param.help,
        )
