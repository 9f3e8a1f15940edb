"""Enforcement points: the gateway, in-process guards, and the helpers upstreams use."""
