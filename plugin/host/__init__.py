"""The host's files and the writer: reading the embedding cache, photos and the
library manifests (``cache``, ``photos``, ``paths``, ``library``, ``status``),
and writing era facesets safely (``crops``, ``cropworker``, ``export``,
``writer``, ``transaction``, ``lock``, ``check``, ``fsutil``, ``heif``)."""
