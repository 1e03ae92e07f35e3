"""The ``faceset_tools`` pluggy contract (hook specifications and implementations)."""
