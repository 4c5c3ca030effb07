"""The ``multirealism`` command line."""
