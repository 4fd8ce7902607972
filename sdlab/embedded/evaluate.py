from sdlab.deprecation import forward

__getattr__ = forward(__name__, "sdlab.embedded.training.evaluate")
