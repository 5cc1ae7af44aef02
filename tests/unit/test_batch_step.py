"""The batch-predict step as the pipeline runs it: store defaults, and model vs TF Serving."""

from components.batch_predict.step import run_step
from components.common import spec
from components.store import open_store
from tests.serving_server import serve_saved_model
from tests.unit.digit_images import sample_files, save_model


def test_step_with_model_in_store_and_through_serving_agree(tmp_path):
    store_uri = str(tmp_path / "store")
    store = open_store(store_uri)
    files, expected = sample_files()
    for name, data in files.items():
        store.put_bytes(f"{spec.IMAGES_PREFIX}/{name}", data)
    model_dir = save_model(tmp_path / "saved")
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
