"""Flow matching between populations (ch08; the topic package for population dynamics).

``letters`` and ``patients`` generate the populations, ``embedding`` and ``fields`` hold the
population embedding and the vector field, ``matching`` trains FM, CGFM and MFM and transports
populations with an ODE solver, and ``distances`` scores a prediction against its target.
"""
