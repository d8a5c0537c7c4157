"""``python -m omniq``: the same as the ``omniq`` command."""

from omniq._entry import main

if __name__ == "__main__":
    main()
