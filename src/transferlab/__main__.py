"""``python -m transferlab``."""

from .cli.main import main

main()
