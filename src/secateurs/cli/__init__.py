"""The ``secateurs`` command line: one module per command, wired up in :mod:`secateurs.cli.main`."""
