"""The operator console (PyQt6). The only package that imports Qt."""
