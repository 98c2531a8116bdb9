"""The daemon's HTTP face: metrics, probes of its own health, the API and the status page."""
