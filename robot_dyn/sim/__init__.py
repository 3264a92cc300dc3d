"""Physics backends behind one small interface (robot_dyn.sim.backend.SimBackend)."""
