"""Model sync for TensorFlow Serving: a small long-running process of ours, not a KFP component.

TF Serving cannot read `s3://` model paths, so a sidecar keeps a volume shared with TF Serving in
step with the model versions the export step publishes to the object store. Logic in `sync.py`,
command line in `__main__.py` (`python -m components.serving_sync`).
"""
