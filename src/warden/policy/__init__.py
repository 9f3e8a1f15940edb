"""Policy administrator and engine: Cedar policies deciding every request."""
