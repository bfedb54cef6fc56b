"""The io layer: settings, the HTTP connection and the one write pipeline."""
