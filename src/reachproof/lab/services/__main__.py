"""Entry point of the lab's service supervisor daemon (see daemon.py)."""

from __future__ import annotations

import sys

from reachproof.lab.services.daemon import main

if __name__ == "__main__":
    sys.exit(main())
