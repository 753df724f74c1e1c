"""``python -m digitflow``, the same as the ``digitflow`` command."""

from digitflow.cli import main

if __name__ == "__main__":
    main()
