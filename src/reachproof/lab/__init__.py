"""The lab: a reference Backend.AI deployment in network namespaces, with named faults."""
