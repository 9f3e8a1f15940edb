"""The ``warden`` command: thin adapters that parse, load settings and call components."""
