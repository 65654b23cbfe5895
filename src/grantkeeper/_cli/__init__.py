"""Command groups of the ``grantkeeper`` CLI, one module each (registered in ``cli.py``)."""
