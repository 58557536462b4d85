"""``python -m caracal_forensics``: the same CLI as the console script."""

from .cli import main

main()
