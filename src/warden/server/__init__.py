"""The control-plane HTTP API (``/v1/...``): thin adapters over the components."""
