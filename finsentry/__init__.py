"""finsentry: a real-time financial opinion monitor."""

__version__ = "0.1.0"
