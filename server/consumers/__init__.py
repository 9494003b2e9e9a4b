"""What every consumer of the log (the engine runner, the projection builders) shares.

Its modules import nothing but the standard library: ``projections`` imports them too.
"""
