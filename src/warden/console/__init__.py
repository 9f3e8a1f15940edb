"""The web console: a live view of agents, decisions, flows and incidents, and the actions
people take on them (``/console`` on the control plane)."""
