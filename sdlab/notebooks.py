from sdlab.deprecation import forward

__getattr__ = forward(__name__, "sdlab.lab.notebooks")

if __name__ == "__main__":  # python -m sdlab.notebooks: the new module's command line, for one release
    import sys
    import warnings

    from sdlab.lab.notebooks import main

    warnings.warn("python -m sdlab.notebooks moved to python -m sdlab.lab.notebooks", DeprecationWarning, stacklevel=1)
    sys.exit(main())
