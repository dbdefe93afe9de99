"""zolib: zeroth-order optimization for continual learning of vision-language models.

The open companion to "Branch, or Layer? Zeroth-Order Optimization for Continual
Learning of Vision-Language Models" (arXiv 2506.12409, MoZO). See the notebooks
under ``notebooks/`` for the argument, and README.md for the commands.
"""
__version__ = "0.1.0"
