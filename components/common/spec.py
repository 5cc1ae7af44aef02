"""Names and defaults shared by the components, the pipeline, the CLI and the tests.

Defined once here so that a renamed prefix or parameter cannot drift between the code that writes
the store and the code that reads it.
"""

# Where MNIST comes from by default: a public mirror of the original release (the four .gz files).
DEFAULT_SOURCE = "https://storage.googleapis.com/cvdf-datasets/mnist/"

# The store on a Kubeflow cluster: the bucket and the in-cluster service of KFP's own MinIO.
DEFAULT_STORE = "s3://mlpipeline/mnist"
IN_CLUSTER_S3_ENDPOINT = "http://minio-service.kubeflow:9000"
# The Secret KFP's MinIO uses, and which of its keys become which environment variables.
MINIO_SECRET = "mlpipeline-minio-artifact"
SECRET_KEY_TO_ENV = {"accesskey": "AWS_ACCESS_KEY_ID", "secretkey": "AWS_SECRET_ACCESS_KEY"}

# Task names. kfp derives them from the component functions' names; a compile test checks they
# agree, and every other module (resources, the local summary, logs) uses these.
DOWNLOAD, UNPACK_UPLOAD, TRAIN, EXPORT, BATCH_PREDICT = (
    "download",
    "unpack-and-upload",
    "train",
    "export",
    "batch-predict",
)
CHECK_PARAMETERS = "check-parameters"  # the first task: every parameter checked (the table's)
STEPS = (CHECK_PARAMETERS, DOWNLOAD, UNPACK_UPLOAD, TRAIN, EXPORT, BATCH_PREDICT)
TUNE = "tune"  # the tuning pipeline's Katib step (pipeline/dag.py build_tune_pipeline)
DEPLOY = "deploy"  # optional (the `deploy` parameter): a KServe InferenceService
# Batch-predict over pods (`compile --shards N`): in place of BATCH_PREDICT, a plan, one task
# per shard in a ParallelFor, and a merge (components/batch_predict/shards.py).
PLAN_SHARDS, PREDICT_SHARD, MERGE_SHARDS = ("plan-shards", "predict-shard", "merge-shards")
SHARD_LOOP = "for-each-shard"
MAX_SHARDS = 10_000
# What a sharded run writes under <predictions>/<version>/shards/ (also what `clean` removes):
# the plan, the manifests, and per shard a folder with its part of the CSV and its marker;
# MERGED: the merge published the result and removed the parts.
SHARDS_FOLDER, SHARD_PLAN = "shards", "plan.json"
SHARD_DONE, SHARD_MERGED = "DONE.json", "MERGED.json"
SHARD_MANIFEST, SHARD_FOLDER = "keys-{:05d}.txt", "{:05d}"  # str.format of the shard's index
# Names of the tasks' outputs, as the Kubeflow UI lists them: the artifacts, and the output
# parameters (one-field NamedTuples, so none is kfp's bare "Output"). A compile test checks them
# against the compiled components.
DATASET_OUTPUT, MODEL_OUTPUT, EXPORTED_OUTPUT, PREDICTIONS_OUTPUT = (
    "dataset",
    "model",
    "exported",
    "predictions",
)
DATASET_URI_OUTPUT = "dataset_uri"  # unpack-and-upload: the dataset folder in the store
ACCURACY_OUTPUT = "test_accuracy"  # train: what the accuracy gate compares
MODEL_URI_OUTPUT = "model_uri"  # export: the published version folder
PREDICTIONS_URI_OUTPUT = "predictions_uri"  # batch-predict: predictions.csv
URL_OUTPUT = "url"  # deploy: the InferenceService's predictor URL
# check-parameters: what the train task's pod asks for (components.common.placement.py)
TRAIN_GPUS, TRAIN_NODE_SELECTOR, TRAIN_TOLERATIONS = (
    "train_gpus",
    "train_node_selector",
    "train_tolerations",
)
REPORT_OUTPUT = "report"  # the HTML page of train and of batch-predict
MODEL_FILE = "model.keras"  # what train writes into its Model artifact, and export reads

# Layout under the store URI.
DATASET_PREFIX = "datasets/mnist"
MODELS_PREFIX = "models/mnist"
IMAGES_PREFIX = "images"
# serving_endpoint's default: batch-predict loads the exported model in its own process.
IN_STEP = "in-step"
# train_limit's default: MNIST's whole training set.
MNIST_TRAIN_SIZE = 60000
PREDICTIONS_PREFIX = "predictions"
# Training checkpoints, one folder per run, removed when the model is exported.
CHECKPOINTS_PREFIX = "checkpoints"
# Written last under a dataset prefix; readers require it, so a partial upload is never taken
# for a whole one.
MANIFEST = "MANIFEST.json"
PREDICTIONS_CSV = "predictions.csv"
# a sharded run's result for very large runs (`--merge-parts`): a manifest of the shards' CSVs
PREDICTIONS_PARTS = "predictions.parts.json"
# low_confidence is "yes" when the confidence is under the min_confidence parameter
PREDICTIONS_HEADER = ("image", "prediction", "confidence", "error", "low_confidence")

# What batch-predict, `predict` and the web page read (matched case-insensitively).
IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
    ".heic",
    ".heif",
)

# A model version in TF Serving's layout: these top-level entries, `saved_model.pb` written last.
SAVED_MODEL_PB = "saved_model.pb"
MODEL_VERSION_ENTRIES = (SAVED_MODEL_PB, "fingerprint.pb", "variables", "assets", "assets.extra")
# TF Serving's warm-up requests in a version; export writes them, deploy's canary replays one.
WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"

# Serving signature of the exported model.
SIGNATURE = "serving_default"
SIGNATURE_INPUT = "images"
OUTPUT_PROBABILITIES = "probabilities"
OUTPUT_CLASSES = "classes"


def version_number(name: str) -> int | None:
    """The model version a folder name stands for: canonical ASCII decimals only ("7", never
    "007", "٣" or "²", which str.isdigit takes for digits), below 10^18; None for any other
    name."""
    canonical = name == "0" or (
        name[:1] in tuple("123456789") and name.isascii() and name.isdigit() and len(name) < 19
    )
    return int(name) if canonical else None
