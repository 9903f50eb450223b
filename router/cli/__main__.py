"""`python -m router.cli`."""

from router.cli.root import main

main()
