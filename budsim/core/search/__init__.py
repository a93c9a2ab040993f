"""Search over deployments: the gene space, NSGA-II (DEAP), the exhaustive reference, and the driver.

Import the submodules directly (`budsim.core.search.optimize`, `.ga`, `.space`); this package module stays
empty so importing it costs nothing.
"""
