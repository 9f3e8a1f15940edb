"""Throwaway PostgreSQL and Redis on 127.0.0.1, started from the machine's own binaries:
for ``warden demo --distributed`` and the tests that need a real database or shared state."""
