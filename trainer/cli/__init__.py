"""The command line: ``commands`` parses and calls one workflow; ``console`` is the one module
that writes to the terminal."""
