"""The decision log: every decision, recorded before it takes effect."""
