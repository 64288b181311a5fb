"""`python -m cardsim` runs the command line."""

from cardsim.cli import main

main()
