"""`python -m evidence.cli`: the `evidence` command."""

from evidence.cli import main

main()
