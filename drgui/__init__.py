"""drgui: a disaster-recovery manager for solo SaaS founders."""

__version__ = "0.1.0"
FORMAT_VERSION = 1
