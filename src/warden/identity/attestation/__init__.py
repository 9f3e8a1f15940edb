"""Workload attestation: how a process proves which agent it is, with no secret copied in."""
