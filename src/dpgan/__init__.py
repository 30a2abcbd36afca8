"""dpgan: Dual Pyramid GANs for semantic image synthesis (Li, Cheng, Gall, BMVC 2022)."""

__version__ = "0.1.0"
