"""The orm layer: the client and repositories of declared classes."""
