"""``python -m balancer``: the command line (importing this module runs nothing)."""

from balancer.cli import main

if __name__ == "__main__":
    main()
