"""reachproof: prove that a cluster's network behaves as its security documentation says."""

__version__ = "0.1.0"
