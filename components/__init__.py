"""The pipeline's steps and the code they share. TensorFlow is quieted before anything here
can import it (components/common/quiet_tf.py)."""

from components.common import quiet_tf

quiet_tf.install()
