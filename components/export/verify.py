"""`python -m components.export.verify SAVED_MODEL SAMPLE.npy EXPECTED.npy`.

Run in a fresh interpreter by the export step (the infra check TFX's InfraValidator makes): the
SavedModel must load on its own and reproduce the trained model's probabilities on a fixed batch.
"""

import sys

import numpy as np


def main(argv: list[str]) -> int:
    import tensorflow as tf

    from components.common import spec

    saved_model, sample_path, expected_path = argv
    sample, expected = np.load(sample_path), np.load(expected_path)
    signature = tf.saved_model.load(saved_model).signatures[spec.SIGNATURE]
    outputs = signature(**{spec.SIGNATURE_INPUT: tf.constant(sample, tf.uint8)})
    got = outputs[spec.OUTPUT_PROBABILITIES].numpy()
    classes = outputs[spec.OUTPUT_CLASSES].numpy()
    if got.shape != expected.shape:
        print(f"probabilities of shape {got.shape}, not {expected.shape}")
        return 1
    if not np.allclose(got, expected, atol=1e-4):
        print(f"probabilities differ: max abs diff {np.abs(got - expected).max():.3g}")
        return 1
    if not np.array_equal(classes, expected.argmax(axis=1)):
        print("classes differ from the argmax of the probabilities")
        return 1
    print(f"{len(sample)} predictions match the trained model")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
