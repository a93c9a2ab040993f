"""Per-family layer builders: ``dense`` (generic GQA decoders and classic families), ``moe``
(mixture-of-experts families) and ``hybrid`` (linear-attention / SSM hybrids). Each builder
takes a ``_Cfg`` and returns the model's ``_Layer`` list; ``budsim.core.model.parse`` picks one.
"""
