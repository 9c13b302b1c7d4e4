"""georisk: calibrated, documented probabilities for geopolitical scenarios."""

from __future__ import annotations

__version__ = "0.1.0"
MODEL_VERSION = "1"

__all__ = ["__version__", "MODEL_VERSION"]
