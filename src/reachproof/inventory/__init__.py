"""The inventory: vantage points, hosts, sessions and apps of one site, loaded from YAML."""
