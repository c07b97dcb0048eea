"""Serving a trained generator to a person: the ``pix2pix demo`` page (a Starlette app on loopback)."""
