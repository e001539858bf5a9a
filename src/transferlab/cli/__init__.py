"""The command-line app (thin: parses options and calls the library)."""
