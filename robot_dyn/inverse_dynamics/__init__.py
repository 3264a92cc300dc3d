"""Learned and hybrid inverse dynamics (after Reuss et al., RSS 2022): excitation trajectories,
data collection, physically consistent identification, recurrent residual models."""
