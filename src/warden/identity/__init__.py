"""The identity authority: agent registry, built-in CA, SPIFFE SVIDs, verification."""
