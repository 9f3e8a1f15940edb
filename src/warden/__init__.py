"""Warden: a zero-trust control plane for autonomous AI agents and other non-person entities."""

__version__ = "0.1.0"
