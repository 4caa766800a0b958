"""`python3 -m guestcheck` is the same as the `guestcheck` command."""

from guestcheck.entry import main

if __name__ == "__main__":
    main()
