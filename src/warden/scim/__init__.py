"""SCIM 2.0: agents created with their identity, deleted with all their access."""
