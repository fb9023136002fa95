"""`python -m reachproof` runs the command line."""

from reachproof.cli import main

main()
