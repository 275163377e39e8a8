"""The folder put first on the Label Studio server's PYTHONPATH (studio.server): its `sitecustomize` runs in the
server's Python before Label Studio starts."""
