"""From stored pairs to a generator: networks, losses, augmentation, the trainer, checkpoints, DDP helpers.

May use ``pix2pix.data`` (sizes, stores); never ``evaluation`` or ``tracking``.
"""
