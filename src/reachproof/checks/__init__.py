"""In-container checks as pure functions of an environment.

Stdlib only: the probe worker ships these modules to the vantage point and runs them against
the environment of its own process, never against the inventory's copy.
"""
