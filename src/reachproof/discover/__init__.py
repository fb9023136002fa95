"""Discovery: build an inventory from a live cluster's own API (`reachproof discover`)."""
