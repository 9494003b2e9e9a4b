"""Generated stubs (`python -m clients.generate`); do not edit."""
