"""Scoring and using a generator: Inception network files and features, image metrics, summaries, translation.

May use ``pix2pix.data`` and ``pix2pix.training``; never ``tracking``.
"""
