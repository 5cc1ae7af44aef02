"""Training hyper-parameters, kept free of numpy and TensorFlow so that the pipeline definition
and the CLI can read the defaults without importing either."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters; the defaults are the pipeline's defaults."""

    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 0.01
    seed: int = 42
    train_limit: int = 0  # use only the first N training examples (0 = all), for quick runs
    augment: bool = True  # random shifts of up to 2 pixels

    def validate(self) -> None:
        """Refuse out-of-range values, naming the parameter."""
        checks = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "learning_rate": 0 < self.learning_rate <= 1,
            "train_limit": self.train_limit >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r} is out of range")
