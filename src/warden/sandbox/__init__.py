"""The sandbox: code an agent wrote runs in a jail, decided and recorded like any request."""
