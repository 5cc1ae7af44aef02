"""Sharded batch-predict (components/batch_predict/shards.py): plan, one run per shard, merge.

The promise: over the same images, the merged result is the one a single batch-predict task
gives (the same predictions.csv bytes, the same counts and tables), whatever the number of
shards; a finished shard is not classified again; nothing is published before every shard is
done and the whole run passes max_failed_fraction. In a folder and on the S3 server.
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.batch_predict import shards
from components.batch_predict.merge import merge
from components.batch_predict.model import BatchPredictError
from components.batch_predict.predictor import batch_predict
from components.common import spec
from components.common.errors import InputError
from components.store import open_store
from tests.unit.digit_images import classify, encode, render, sample_files


@pytest.fixture(scope="module")
def samples():
    files, _ = sample_files()
    # more images than shards, in several folders, so that every shard has some
    for digit in range(10):
        for variant in range(3):
            files[f"more/{variant}/{digit}.png"] = encode(
                render(digit, (40 + 8 * variant,) * 2), "PNG"
            )
    return files


@pytest.fixture(params=["local", "s3"])
def where(request, tmp_path):
    """(images URI, output root, S3 endpoint)."""
    if request.param == "local":
        return str(tmp_path / "images"), str(tmp_path / "out"), ""
    root = f"s3://{request.getfixturevalue('s3_bucket')}"
    return f"{root}/images", f"{root}/out", request.getfixturevalue("s3_env")


def put(images_uri, endpoint, files):
    store = open_store(images_uri, endpoint)
    for key, data in files.items():
        store.put_bytes(key, data)


class Counting:
    """The test classifier, counting the images it is given."""

    def __init__(self):
        self.images = 0

    def __call__(self, images):
        self.images += len(images)
        return classify(images)


BATCH = 4  # small batches: many shards over a few dozen images


def planned_and_run(images_uri, plan_uri, endpoint, count, classifier=classify):
    """The plan of `count` shards at `plan_uri`, every shard classified: (plan, their runs)."""
    plan = shards.plan(images_uri, plan_uri, count, endpoint, batch_size=BATCH)
    runs = [shards.run_shard(plan_uri, i, classifier, endpoint) for i in range(plan["shards"])]
    return plan, runs


def sharded(images_uri, out, endpoint, count, classifier=classify, **merge_options):
    plan_uri = f"{out}/sharded/shards"
    plan, runs = planned_and_run(images_uri, plan_uri, endpoint, count, classifier)
    merged = merge(plan_uri, f"{out}/sharded", endpoint, **merge_options)
    return plan, runs, merged


@pytest.mark.parametrize("count", [1, 2, 5])
def test_sharded_gives_exactly_the_unsharded_result(where, samples, count):
    images_uri, out, endpoint = where
    put(images_uri, endpoint, samples)
    one = batch_predict(images_uri, f"{out}/one", classify, endpoint, batch_size=BATCH)
    plan, runs, merged = sharded(images_uri, out, endpoint, count)
    assert plan["shards"] == count and sum(run["rows"] for run in runs) == one["total"]
    assert merged["shards"] == count
    store = open_store(out, endpoint)
    csv_one = store.get_bytes(f"one/{spec.PREDICTIONS_CSV}")
    assert store.get_bytes(f"sharded/{spec.PREDICTIONS_CSV}") == csv_one
    for key in ("predicted", "failed", "low_confidence", "total", "skipped"):
        assert merged[key] == one[key], key
    markdown = merged["markdown"].replace("/sharded/", "/one/")
    assert markdown == one["markdown"]  # counts, skipped files, the first rows
    html = merged["html"].replace("/sharded/", "/one/")
    assert html == one["html"]  # the same pictures (as uploaded and as the model saw them)
    assert one["failed"] > 0 and one["skipped"] > 0  # the samples hold both kinds


def test_keys_with_characters_splitlines_would_cut_are_one_key(tmp_path, samples):
    """A manifest is one key a line ("\n"); a form feed, a file separator or U+2028 inside a
    key is part of it (str.splitlines cut them: the shard looked for keys that do not exist)."""
    images_uri, out = str(tmp_path / "images"), str(tmp_path / "out")
    odd = ["form\x0cfeed.png", "sep\x1cx.png", "line\u2028sep.png", "cr\rkey.png"]
    put(images_uri, "", {name: samples["more/0/7.png"] for name in odd})
    one = batch_predict(images_uri, f"{out}/one", classify, batch_size=BATCH)
    merged = sharded(images_uri, out, "", 1)[2]
    assert (one["predicted"], merged["predicted"]) == (4, 4)
    store = open_store(out)
    assert store.get_bytes(f"sharded/{spec.PREDICTIONS_CSV}") == store.get_bytes(
        f"one/{spec.PREDICTIONS_CSV}"
    )


def test_more_images_than_the_report_pictures(tmp_path, samples):
    """Past GALLERY images of a kind, the merged reports still equal one task's (the merge
    fetched only the pictured ones, and once looked up the others: a KeyError)."""
    images_uri, out = str(tmp_path / "images"), str(tmp_path / "out")
    base = [samples[f"more/{v}/{d}.png"] for v in range(3) for d in range(10)]
    put(images_uri, "", {f"many/{i:03d}.png": base[i % len(base)] for i in range(150)})
    one = batch_predict(images_uri, f"{out}/one", classify, batch_size=BATCH)
    merged = sharded(images_uri, out, "", 3)[2]
    assert one["total"] == 150 and merged["html"].replace("/sharded/", "/one/") == one["html"]
    assert merged["markdown"].replace("/sharded/", "/one/") == one["markdown"]


def test_a_finished_shard_is_skipped_on_a_second_run(tmp_path, samples, caplog):
    images_uri, out = str(tmp_path / "images"), str(tmp_path / "out")
    put(images_uri, "", samples)
    plan_uri = f"{out}/shards"
    plan = shards.plan(images_uri, plan_uri, 3, batch_size=BATCH)
    first = Counting()
    done = [shards.run_shard(plan_uri, i, first) for i in range(2)]  # preempted before shard 2
    with pytest.raises(BatchPredictError, match="^shard 2 of 3 is not finished$"):
        merge(plan_uri, out)
    assert open_store(out).stat(spec.PREDICTIONS_CSV) is None
    again = Counting()
    caplog.clear()
    resumed = [shards.run_shard(plan_uri, i, again) for i in range(plan["shards"])]
    assert [run["resumed"] for run in resumed] == [True, True, False]
    rows = resumed[0]["rows"]
    assert f"shard 0 is finished already ({rows} rows): skipped" in caplog.text
    assert f"shard 2: classifying {resumed[2]['rows']} images" in caplog.text
    marker = json.loads(open_store(plan_uri).get_bytes(f"{shards.shard_folder(2)}/DONE.json"))
    assert (marker["shard"], marker["rows"]) == (2, resumed[2]["rows"])
    assert again.images == resumed[2]["rows"] - resumed[2]["failed"]  # only shard 2's images
    assert first.images == sum(run["rows"] - run["failed"] for run in done)
    assert merge(plan_uri, out)["total"] == sum(run["rows"] for run in resumed)


def test_a_shard_of_another_plan_is_done_again(tmp_path, samples):
    """New images since: the plan changes, and so do the manifests the markers name."""
    images_uri, plan_uri = str(tmp_path / "images"), str(tmp_path / "shards")
    put(images_uri, "", samples)
    shards.plan(images_uri, plan_uri, 2, batch_size=BATCH)
    shards.run_shard(plan_uri, 0, classify)
    put(images_uri, "", {"0000-first.png": samples["more/0/0.png"]})
    shards.plan(images_uri, plan_uri, 2, batch_size=BATCH)
    assert shards.run_shard(plan_uri, 0, classify)["resumed"] is False


def test_the_whole_run_is_held_to_max_failed_fraction(tmp_path, samples):
    """Each shard publishes its part whatever its share; the merge judges the run."""
    images_uri, out = str(tmp_path / "images"), str(tmp_path / "out")
    put(images_uri, "", {f"bad/{i}.png": b"not an image" for i in range(4)})
    put(images_uri, "", {f"good/{i}.png": samples[f"more/0/{i}.png"] for i in range(4)})
    open_store(f"{out}/sharded").put_bytes(spec.PREDICTIONS_CSV, b"an earlier run's")
    with pytest.raises(BatchPredictError, match=f"^4 of 8 images under {images_uri} failed"):
        sharded(images_uri, out, "", 2, max_failed_fraction=0.25)
    assert open_store(f"{out}/sharded").stat(spec.PREDICTIONS_CSV) is None  # withdrawn
    assert sharded(images_uri, out, "", 2, max_failed_fraction=0.5)[2]["failed"] == 4


def test_images_per_shard_sets_the_count_and_never_more_shards_than_batches(tmp_path, samples):
    images_uri = str(tmp_path / "images")
    put(images_uri, "", {f"{i}.png": samples["more/0/1.png"] for i in range(10)})
    per_four = shards.plan(images_uri, str(tmp_path / "a"), 1, images_per_shard=4, batch_size=1)
    assert per_four["shards"] == 3
    capped = shards.plan(images_uri, str(tmp_path / "d"), 2, images_per_shard=1, batch_size=1)
    assert capped["shards"] == 2  # --shards above 1 caps --images-per-shard
    assert shards.plan(images_uri, str(tmp_path / "b"), 64, batch_size=1)["shards"] == 10
    assert shards.plan(images_uri, str(tmp_path / "c"), 64, batch_size=4)["shards"] == 3


@pytest.mark.parametrize(
    ("count", "per_shard", "message"),
    [(0, 0, "shards must be 1 to 10000, got 0"), (2, -1, "images_per_shard must be 0 or more")],
)
def test_bad_plan_arguments_name_the_parameter(tmp_path, count, per_shard, message):
    with pytest.raises(InputError, match=message):
        shards.plan(str(tmp_path), str(tmp_path / "p"), count, images_per_shard=per_shard)


def test_no_images_is_refused_before_any_manifest(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(BatchPredictError, match="^no images"):
        shards.plan(str(tmp_path / "images"), str(tmp_path / "p"), 2)
    assert not (tmp_path / "p").exists()


@settings(max_examples=60, deadline=None)
@given(total=st.integers(1, 200), count=st.integers(1, 40), batch=st.integers(1, 16))
def test_the_manifests_split_the_listing_in_order_at_batch_starts(
    tmp_path_factory, total, count, batch
):
    work = tmp_path_factory.mktemp("split")
    listing = work / "keys.txt"
    keys = [f"{i:04d}.png" for i in range(total)]
    listing.write_text("".join(k + "\n" for k in keys))
    out = open_store(str(work / "out"))
    count = min(count, -(-total // batch))
    shards._write_manifests(listing, total, count, out, work, batch)
    parts = [out.get_bytes(shards.manifest_name(i)).decode().splitlines() for i in range(count)]
    assert [k for part in parts for k in part] == keys  # every key once, in order
    assert all(parts), "an empty shard"
    assert all(len(part) % batch == 0 for part in parts[:-1])  # each starts a batch
    sizes = [-(-len(part) // batch) for part in parts]
    assert max(sizes) - min(sizes) <= 1  # even, in batches


def test_the_plan_records_what_it_listed(tmp_path, samples):
    images_uri, plan_uri = str(tmp_path / "images"), str(tmp_path / "p")
    put(images_uri, "", samples)
    plan = shards.plan(images_uri, plan_uri, 4, batch_size=BATCH)
    on_disk = json.loads(open_store(plan_uri).get_bytes(shards.PLAN_FILE))
    assert on_disk == plan and len(plan["manifests"]) == 4
    assert plan["skipped"] == len(plan["skipped_examples"]) > 0


def test_the_merge_removes_the_parts_and_a_retried_merge_gives_the_same(where, samples, caplog):
    """predictions.csv holds the parts once merged: they go (stored twice otherwise). A merge
    task retried after that finds MERGED.json and gives the same result (the model and the
    lineage too) and says so; a new run plans again and classifies every shard again."""
    images_uri, out, endpoint = where
    put(images_uri, endpoint, samples)
    named = {"model_label": "mnist version 3", "lineage": {"model_uri": "s3://b/models/3"}}
    plan, _, merged = sharded(images_uri, out, endpoint, 3, **named)
    results = open_store(f"{out}/sharded", endpoint)
    published = results.get_bytes(spec.PREDICTIONS_CSV)
    parts = [f"shards/{shards.shard_folder(i)}/{spec.PREDICTIONS_CSV}" for i in range(3)]
    assert [results.stat(part) for part in parts] == [None] * 3
    said = f"{merged['predicted']} classified, {merged['failed']} failed in 3 shards; predictions"
    assert f"{said} at {merged['predictions_uri']}" in caplog.text
    caplog.clear()
    assert merge(f"{out}/sharded/shards", f"{out}/sharded", endpoint, **named) == merged
    assert f"the plan was merged already into {merged['predictions_uri']}" in caplog.text
    assert results.get_bytes(spec.PREDICTIONS_CSV) == published
    counting = Counting()
    again = sharded(images_uri, out, endpoint, 3, classifier=counting)
    assert [run["resumed"] for run in again[1]] == [False] * 3
    assert counting.images == merged["predicted"]
    assert results.get_bytes(spec.PREDICTIONS_CSV) == published


def test_a_retried_merge_whose_result_was_replaced_merges_nothing_stale(tmp_path, samples):
    """MERGED.json counts only while the CSV it published is there: otherwise the parts are
    needed, and they are gone, so the merge refuses rather than publish a report of nothing."""
    images_uri, out = str(tmp_path / "images"), str(tmp_path / "out")
    put(images_uri, "", samples)
    sharded(images_uri, out, "", 2)
    open_store(f"{out}/sharded").put_bytes(spec.PREDICTIONS_CSV, b"someone else's")
    with pytest.raises(BatchPredictError, match="^shard 0 of 2 is not finished$"):
        merge(f"{out}/sharded/shards", f"{out}/sharded")
    assert open_store(f"{out}/sharded").stat(spec.PREDICTIONS_CSV) is None


def test_a_parts_manifest_lists_the_parts_that_read_in_order_are_one_tasks_csv(where, samples):
    """`parts`, for runs too large for one file: predictions.parts.json names the shards' CSVs
    in order, with their row counts; each has the header, and their rows after it are one
    task's predictions.csv. The parts stay; an earlier whole CSV goes, and a later whole merge
    takes the manifest away."""
    images_uri, out, endpoint = where
    put(images_uri, endpoint, samples)
    one = batch_predict(images_uri, f"{out}/one", classify, endpoint, batch_size=BATCH)
    results = open_store(f"{out}/sharded", endpoint)
    results.put_bytes(spec.PREDICTIONS_CSV, b"an earlier run's")
    merged = sharded(images_uri, out, endpoint, 3, parts=True)[2]
    assert merged["predictions_uri"] == results.uri(spec.PREDICTIONS_PARTS)
    assert results.stat(spec.PREDICTIONS_CSV) is None
    manifest = json.loads(results.get_bytes(spec.PREDICTIONS_PARTS))
    assert (manifest["rows"], len(manifest["parts"])) == (one["total"], 3)
    header = (",".join(manifest["header"]) + "\r\n").encode()
    joined = header
    for part in manifest["parts"]:
        folder, _, name = part["uri"].rpartition("/")
        data = open_store(folder, endpoint).get_bytes(name)
        assert data.startswith(header) and data.count(b"\n") == part["rows"] + 1
        joined += data[len(header) :]
    assert joined == open_store(out, endpoint).get_bytes(f"one/{spec.PREDICTIONS_CSV}")
    for key in ("predicted", "failed", "low_confidence", "total", "skipped"):
        assert merged[key] == one[key], key
    whole = sharded(images_uri, out, endpoint, 3)[2]
    assert whole["predictions_uri"] == results.uri(spec.PREDICTIONS_CSV)
    assert results.stat(spec.PREDICTIONS_PARTS) is None


def test_a_refused_parts_merge_leaves_no_earlier_manifest(tmp_path, samples):
    images_uri, out = str(tmp_path / "images"), str(tmp_path / "out")
    put(images_uri, "", {f"bad/{i}.png": b"not an image" for i in range(4)})
    put(images_uri, "", {f"good/{i}.png": samples[f"more/0/{i}.png"] for i in range(4)})
    open_store(f"{out}/sharded").put_bytes(spec.PREDICTIONS_PARTS, b"an earlier run's")
    with pytest.raises(BatchPredictError, match="4 of 8 images .* failed"):
        sharded(images_uri, out, "", 2, max_failed_fraction=0.25, parts=True)
    assert open_store(f"{out}/sharded").stat(spec.PREDICTIONS_PARTS) is None


@pytest.mark.parametrize(
    "uri", ["keys-00001.txt", "s3://b/plan/keys-1.txt", "s3://b/plan/keys-00001.txt.bak", ""]
)
def test_what_is_not_a_manifest_uri_is_named(uri):
    with pytest.raises(InputError, match=r"is not a shard manifest \(<plan>/keys-NNNNN.txt\)$"):
        shards.parse_manifest_uri(uri)
    assert shards.parse_manifest_uri("s3://b/p/shards/keys-00012.txt") == ("s3://b/p/shards", 12)


def test_a_part_without_the_header_is_refused_and_nothing_is_published(tmp_path, samples):
    """A part that is not what run_shard wrote (its first line is not the CSV header) is named,
    and no predictions.csv made of it appears."""
    images_uri, out = str(tmp_path / "images"), str(tmp_path / "out")
    put(images_uri, "", samples)
    plan_uri = f"{out}/shards"
    planned_and_run(images_uri, plan_uri, "", 2)
    open_store(plan_uri).put_bytes(f"{shards.shard_folder(1)}/{spec.PREDICTIONS_CSV}", b"x,y\r\n")
    with pytest.raises(BatchPredictError, match=r"^shard 1's predictions.csv has no header$"):
        merge(plan_uri, out)
    assert open_store(out).stat(spec.PREDICTIONS_CSV) is None


def test_a_merged_record_of_other_manifests_is_not_taken_for_this_plans(tmp_path, samples):
    """MERGED.json counts only for the plan it names: another plan's (same-sized CSV or not)
    does not stand for this one's merge."""
    images_uri, out = str(tmp_path / "images"), str(tmp_path / "out")
    put(images_uri, "", samples)
    sharded(images_uri, out, "", 2)
    plan_store = open_store(f"{out}/sharded/shards")
    record = json.loads(plan_store.get_bytes(shards.MERGED_FILE))
    record["manifests"] = ["0" * 64] * 2
    plan_store.put_bytes(shards.MERGED_FILE, json.dumps(record).encode())
    with pytest.raises(BatchPredictError, match="^shard 0 of 2 is not finished$"):
        merge(f"{out}/sharded/shards", f"{out}/sharded")


def test_parts_that_cannot_be_removed_are_a_warning_naming_where(
    tmp_path, samples, monkeypatch, caplog
):
    """The result is published before the parts go: a part the store will not delete is said,
    with the plan's folder and the store's reason, and the merge succeeds."""
    from components.store import LocalStore, StoreError

    images_uri, out = str(tmp_path / "images"), str(tmp_path / "out")
    put(images_uri, "", samples)
    plan_uri = f"{out}/shards"
    plan = planned_and_run(images_uri, plan_uri, "", 2)[0]

    def refuse(self, key):
        raise StoreError(f"{self.uri(key)}: access denied")

    monkeypatch.setattr(LocalStore, "delete", refuse)
    merged = merge(plan_uri, out)
    assert merged["total"] == plan["total"] and open_store(out).stat(spec.PREDICTIONS_CSV)
    part = open_store(plan_uri).uri(f"{shards.shard_folder(0)}/{spec.PREDICTIONS_CSV}")
    earlier = open_store(out).uri(spec.PREDICTIONS_PARTS)
    assert f"could not remove the earlier {spec.PREDICTIONS_PARTS}: {earlier}: access denied" in (
        caplog.text
    )
    assert f"the shards' parts under {open_store(plan_uri).uri()} stay: {part}: access denied" in (
        caplog.text
    )


def test_the_model_and_lineage_reach_the_report_and_provenance_as_one_tasks(tmp_path, samples):
    """The merge names the model and records where the predictions come from as one task does:
    the same HTML report (model, lineage) and a provenance.json beside predictions.csv."""
    images_uri, out = str(tmp_path / "images"), str(tmp_path / "out")
    put(images_uri, "", samples)
    lineage = {"model_uri": "s3://b/models/mnist/3", "model_version": "3", "run_id": "run-1"}
    named = {"model_label": "mnist version 3 (in-step)", "lineage": lineage}
    one = batch_predict(images_uri, f"{out}/one", classify, batch_size=BATCH, **named)
    merged = sharded(images_uri, out, "", 3, **named)[2]
    assert "mnist version 3 (in-step)" in merged["html"] and "run-1" in merged["html"]
    shards_row = "<tr><td>shards</td><td>3</td></tr>"  # the one difference: it was sharded
    assert shards_row in merged["html"]
    when = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")  # predicted_at: each run's own
    html = merged["html"].replace("/sharded/", "/one/").replace(shards_row, "")
    assert when.sub("T", html) == when.sub("T", one["html"])
    record = json.loads(open_store(f"{out}/sharded").get_bytes("provenance.json"))
    assert {k: record[k] for k in lineage} == lineage and record["shards"] == 3
    assert record["predictions_uri"] == merged["predictions_uri"]
    assert (record["images_uri"], record["images"]) == (images_uri, merged["total"])
    assert (record["predicted"], record["failed"]) == (merged["predicted"], merged["failed"])
    assert when.fullmatch(record["predicted_at"])


def test_more_skipped_files_than_the_plan_names_are_counted_as_one_task_counts_them(
    tmp_path, samples, monkeypatch
):
    images_uri, out = str(tmp_path / "images"), str(tmp_path / "out")
    put(images_uri, "", samples)
    put(images_uri, "", {f"notes/{i}.txt": b"x" for i in range(3)})
    monkeypatch.setattr(shards, "MAX_SKIPPED_NAMED", 2)
    one = batch_predict(images_uri, f"{out}/one", classify, batch_size=BATCH)
    merged = sharded(images_uri, out, "", 2)[2]
    assert merged["skipped"] == one["skipped"] > 2


def test_a_parts_merge_needs_the_parts_a_whole_merge_removed(tmp_path, samples):
    """Once a whole merge removed the parts, a merge asked for the parts manifest cannot list
    them: it refuses (MERGED.json stands for the whole CSV only)."""
    images_uri, out = str(tmp_path / "images"), str(tmp_path / "out")
    put(images_uri, "", samples)
    sharded(images_uri, out, "", 2)
    with pytest.raises(BatchPredictError, match="^shard 0 of 2 is not finished$"):
        merge(f"{out}/sharded/shards", f"{out}/sharded", parts=True)


def test_a_shard_index_outside_the_plan_and_a_missing_plan_are_named(tmp_path, samples):
    images_uri, plan_uri = str(tmp_path / "images"), str(tmp_path / "shards")
    put(images_uri, "", samples)
    with pytest.raises(BatchPredictError, match=f"^no readable plan.json at {plan_uri}: "):
        shards.run_shard(plan_uri, 0, classify)
    plan = shards.plan(images_uri, plan_uri, 2, batch_size=BATCH)
    for index in (-1, plan["shards"]):
        with pytest.raises(InputError, match=f"^shard {index} is not one of the plan's 2$"):
            shards.run_shard(plan_uri, index, classify)


def test_a_shard_decodes_in_processes_from_as_many_images_as_one_task_does(
    tmp_path, samples, monkeypatch
):
    """predictor.auto_processes: the same rule for a shard as for one task (and the same CSV)."""
    from components.batch_predict import predictor

    images_uri, out = str(tmp_path / "images"), str(tmp_path / "out")
    put(images_uri, "", samples)
    batch_predict(images_uri, f"{out}/one", classify, batch_size=BATCH)
    monkeypatch.setattr(predictor, "AUTO_PROCESSES", 1)
    assert predictor.auto_processes(1) >= 1 and predictor.auto_processes(0) == 0
    sharded(images_uri, out, "", 2)
    store = open_store(out)
    csv = store.get_bytes(f"sharded/{spec.PREDICTIONS_CSV}")
    assert csv == store.get_bytes(f"one/{spec.PREDICTIONS_CSV}")


def test_a_key_with_a_line_break_is_skipped_and_named_and_the_most_shards_are_allowed(
    tmp_path, samples
):
    """A manifest holds one key a line: a key with "\\n" cannot be in one, so the plan counts
    and names it among the skipped (the reports show it). MAX_SHARDS itself is allowed."""
    images_uri = str(tmp_path / "images")
    put(images_uri, "", {"ok.png": samples["more/0/7.png"], "two\nlines.png": b"x"})
    plan = shards.plan(images_uri, str(tmp_path / "a"), shards.MAX_SHARDS, batch_size=BATCH)
    assert (plan["total"], plan["shards"], plan["skipped"]) == (1, 1, 1)
    assert plan["skipped_examples"] == [["two\nlines.png", "a key with a line break: not sharded"]]
