"""dpgan: Dual Pyramid GANs for semantic image synthesis (Li, Cheng, Gall, BMVC 2022)."""

__version__ = "0.1.0"

__all__ = ["DPGAN"]


def __getattr__(name: str):
    # `from dpgan import DPGAN` without importing torch for `dpgan --version`
    if name == "DPGAN":
        from dpgan.inference.api import DPGAN

        return DPGAN
    raise AttributeError(f"module 'dpgan' has no attribute {name!r}")
