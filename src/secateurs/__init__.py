"""secateurs: structured pruning that makes CNNs smaller and measurably faster."""

__version__ = "0.1.0"
