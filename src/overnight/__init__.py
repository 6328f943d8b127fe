"""overnight: run a business's nightly batch of jobs, resumably."""

from overnight.batch import Batch, Context, Step

__all__ = ["Batch", "Context", "Step"]
__version__ = "0.1.0"
