"""``python -m trainlab``: the command line, as the ``trainlab`` script runs it (torchrun starts it this way)."""

from trainlab.cli import main

if __name__ == "__main__":
    main()
