if __name__ == "__main__":
    import sys

    from kvip.cli import main

    sys.exit(main())
