"""`python -m pix2pix` runs the command line."""

from pix2pix.cli import app

app()
