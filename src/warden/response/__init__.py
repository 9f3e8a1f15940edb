"""Automated response: playbooks that contain a misbehaving agent within a second."""
