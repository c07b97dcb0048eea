"""pix2pix: a reproducible paired image-to-image translation pipeline (library part).

The library takes paths, arrays and config objects as arguments and returns values; it never reads
``params.yaml``, prints for people or exits the process. ``stages/`` and ``pix2pix.cli`` do that.
"""

__version__ = "0.1.0"
