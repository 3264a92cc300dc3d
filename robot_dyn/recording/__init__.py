"""Recording demonstrations: episodes of the graph's topics as rosbag2 (MCAP) directories."""
