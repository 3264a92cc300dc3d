"""robot_dyn: installs with pip (a plain virtual environment) and with colcon (a ROS 2 workspace).

With colcon, setup.cfg puts the node executables under lib/robot_dyn so that
`ros2 run robot_dyn <node>` and launch files find them; with pip they land on PATH.
"""
import os

from setuptools import find_packages, setup

PACKAGE = "robot_dyn"


def tree(folder):
    """data_files entries that copy `folder` recursively under share/robot_dyn."""
    entries = []
    for root, _dirs, files in os.walk(folder):
        paths = [os.path.join(root, f) for f in files if not f.endswith((".pyc", "~"))]
        if paths:
            entries.append((os.path.join("share", PACKAGE, root), paths))
    return entries


NODES = {
    "sim": "robot_dyn.nodes.sim_node:main",
    "controller": "robot_dyn.nodes.controller_node:main",
    "hardware_adapter": "robot_dyn.nodes.hardware_adapter_node:main",
    "perception": "robot_dyn.nodes.perception_node:main",
    "teleop": "robot_dyn.nodes.teleop_node:main",
    "recorder": "robot_dyn.nodes.recorder_node:main",
    "policy": "robot_dyn.nodes.policy_node:main",
    "search": "robot_dyn.nodes.search_node:main",
    "dynamics_planner": "robot_dyn.nodes.dynamics_planner_node:main",
}

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Visuomotor learning and control of torque-controlled arms on ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=[PACKAGE, PACKAGE + ".*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        (os.path.join("share", PACKAGE), ["package.xml"]),
        *tree("launch"),
        *tree("configs"),
        *tree("urdf"),
        *tree("hardware"),
    ],
    install_requires=[
        "numpy>=1.24",
        "pyyaml>=6",
        "pin>=3.0",
        "mujoco>=3.2",
        "pybullet>=3.2",
        "matplotlib>=3.7",
        "imageio>=2.31",
        "imageio-ffmpeg>=0.4",
        "scipy>=1.10",
        "pyarrow>=14",
        "rosbags>=0.10",
        "mcap>=1.1",  # reading what a killed recorder left (robot_dyn/recording/episode_bag.py)
        "pandas>=2",  # LeRobot's tasks table is a pandas frame indexed by the task (robot_dyn/recording/lerobot_export.py)
        "shapely>=2",  # the Push-T coverage: polygon intersection (robot_dyn/tasks/pusht.py)
        "safetensors>=0.4",
        # Safety filter (OSQP called directly), robust filter (Clarabel SOCP), MPC (cvxpy).
        "osqp>=1.0",
        "clarabel>=0.9",
        "cvxpy>=1.5",
        # Compiled kernels of the 500 Hz loop (robot_dyn/jit.py).
        "numba>=0.60",
        # Process CPU times (robot-dyn bench control's idle cost).
        "psutil>=5.9",
        # Perception: point clouds and images.
        "open3d>=0.18",
        "opencv-python-headless>=4.8",
        # Policy heads (robot_dyn/imitation/heads.py): diffusion schedulers and residual vector quantisation;
        # both need torch, which `make` installs first (CPU build).
        "diffusers>=0.30",
        "vector-quantize-pytorch>=1.14",
        # Search strategies (robot_dyn/search/model.py): Gaussian mixtures chosen by BIC, and Gaussian
        # mixture regression of force on velocity.
        "scikit-learn>=1.3",
        "gmr>=1.6",
    ],
    extras_require={
        # rclpy and the message packages from the PyPI ROS 2 wheels; a ROS 2 install
        # already provides them, so they are an extra.
        "ros": [
            "ros-rclpy[fastrtps]",
            "ros-std-msgs",
            "ros-sensor-msgs",
            "ros-geometry-msgs",
            "ros-trajectory-msgs",
            "ros-rosgraph-msgs",
            "ros-diagnostic-msgs",
            "ros-visualization-msgs",
            "ros-std-srvs",  # the recorder's Trigger services
        ],
        "test": ["pytest>=7", "hypothesis>=6"],
        # torch is required for learning; `make` installs the CPU build 2.13.0 first.
        "learn": ["torch>=2.3"],
    },
    entry_points={
        "console_scripts": [f"{name}={target}" for name, target in NODES.items()]
        + ["robot-dyn=robot_dyn.cli:main"],
    },
    zip_safe=False,
)
