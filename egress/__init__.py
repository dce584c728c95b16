"""egress: an outbound proxy that keeps internal secrets in and verifies what comes back."""

__version__ = "0.1.0"
