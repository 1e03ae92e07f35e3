"""The method: from one identity's faces to eras. Pure functions over arrays
and small dataclasses; no file access (``pipeline.analyse`` takes a photo
reader). ``params`` and ``calibrate`` (the parameters), ``method`` (recover,
gate, tighten, sub-cluster, the seed's assignment), ``averagecut`` (exact
average linkage without a distance matrix), ``recovery`` and ``eras`` (the era
method), ``labels`` and ``pipeline`` (buckets and their names)."""
