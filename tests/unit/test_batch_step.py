"""The batch-predict step as the pipeline runs it: store defaults, and model vs TF Serving."""

import pytest

from components.batch_predict.step import run_step
from components.common import spec
from components.store import open_store
from tests.serving_server import serve_saved_model
from tests.unit.digit_images import sample_files, save_model


def images_and_model(tmp_path):
    """A folder store with the sample images under images/, and a saved model beside it:
    (its URI, the store, the expected labels, the model's folder)."""
    store_uri = str(tmp_path / "store")
    store = open_store(store_uri)
    files, expected = sample_files()
    for name, data in files.items():
        store.put_bytes(f"{spec.IMAGES_PREFIX}/{name}", data)
    return store_uri, store, expected, save_model(tmp_path / "saved")


def test_step_with_model_in_store_and_through_serving_agree(tmp_path):
    store_uri, store, expected, model_dir = images_and_model(tmp_path)
    for path in model_dir.rglob("*"):
        if path.is_file():
            store.put_file(f"models/mnist/1/{path.relative_to(model_dir)}", path)

    local = run_step(store.uri("models/mnist/1"), store_uri, "", "", "", 0.9)
    # beside the version that made them: overlapping runs never replace each other's CSV
    assert local["predictions_uri"] == store.uri(f"{spec.PREDICTIONS_PREFIX}/1/predictions.csv")
    local_csv = store.get_bytes(f"{spec.PREDICTIONS_PREFIX}/1/{spec.PREDICTIONS_CSV}")

    with serve_saved_model(model_dir) as serving:
        remote = run_step("", store_uri, "", str(tmp_path / "remote"), "", 0.9, serving.target)
    assert (tmp_path / "remote/1" / spec.PREDICTIONS_CSV).read_bytes() == local_csv
    assert (
        remote["predicted"]
        == local["predicted"]
        == sum(isinstance(v, int) for v in expected.values())
    )


def test_sharded_through_serving_gives_the_one_task_csv_and_refuses_a_new_version(
    tmp_path, monkeypatch
):
    """Shards through TF Serving classify with the version the plan was made for: the same CSV
    as one task; if TF Serving moves on to another version mid-run, a shard and the merge
    refuse rather than mix two models in one predictions.csv."""
    from components.batch_predict import shards
    from components.batch_predict.model import BatchPredictError
    from components.batch_predict.step import merge_step, plan_step, shard_step
    from tests import serving_server

    store_uri, store, _, model_dir = images_and_model(tmp_path)
    with serve_saved_model(model_dir) as serving:
        one = run_step("", store_uri, "", "one", "", 0.9, serving.target)
        # fewer images than a batch of 256: one shard (test_shards.py splits finer)
        manifests = plan_step("", store_uri, "", "sharded", "", serving.target, 2)
        assert manifests[0].startswith(store.uri("sharded/1/shards/"))
        for uri in manifests:
            shard_step(uri, "", serving.target, 0.9)
        merged = merge_step("", manifests, "", 0.9, serving.target, "")
        assert store.get_bytes("sharded/1/predictions.csv") == store.get_bytes(
            "one/1/predictions.csv"
        )
        assert merged["predicted"] == one["predicted"]
        store.delete(f"sharded/1/{shards.SHARDS_FOLDER}/00000/{shards.DONE_FILE}")
        monkeypatch.setattr(serving_server, "VERSION", 2)  # a new version is deployed
        with pytest.raises(BatchPredictError, match="now serves version 2, but this run's"):
            shard_step(manifests[0], "", serving.target, 0.9)
        with pytest.raises(BatchPredictError, match="planned for version 1"):
            merge_step("", manifests, "", 0.9, serving.target, "")
