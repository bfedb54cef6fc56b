"""The core layer: errors, the one time rule, process helpers. Imports only the standard library."""
