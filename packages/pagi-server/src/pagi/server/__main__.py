"""``python -m pagi.server``: same as the ``pagi-server`` command."""

from pagi.server.cli import main

main()
