"""The tools layer: NAB data and scoring, CSV import, the demo, the managed local server."""
