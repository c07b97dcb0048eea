"""From a source to stored pairs: download, archive safety, layouts, decoding, palettes, prepare, split, the sample.

Uses only the shared modules at the top of the package (errors, atomic writes, hashing, choices); nothing here
imports ``training``, ``evaluation`` or ``tracking``.
"""
