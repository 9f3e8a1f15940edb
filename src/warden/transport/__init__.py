"""TLS plumbing shared by every Warden server and client."""
