"""Jobs a person runs: the main simulation job and its report."""
