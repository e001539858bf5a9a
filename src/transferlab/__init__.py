"""transferlab: transfer learning on image folders with pretrained CNNs.

See the README for the command line; the library API is listed in ``__all__``.
"""

__version__ = "0.1.0"
