"""Training and evaluating the embedded model (floor 5: it generates with :func:`sdlab.generation.generate`).

* :mod:`.dataset`: the procedural captioned scenes, deterministic by seed;
* :mod:`.train`: the training recipe (VAE, text encoder + UNet, attribute classifier) from a seed;
* :mod:`.classifier`: the attribute classifier that checks what an image shows against its caption;
* :mod:`.evaluate`: VAE fidelity, prompt adherence and seed diversity of a trained model;
* :mod:`.tiny_decoder`: distilling the tiny decoder (TAESD-style) from the VAE.

The weights, the vocabulary and the architecture they train stay one floor down, in :mod:`sdlab.embedded`.
"""
