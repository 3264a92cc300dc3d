"""Declaring a node's ROS parameters from a dict of defaults, and reading them back as plain values."""
from __future__ import annotations

from rcl_interfaces.msg import ParameterDescriptor, ParameterType
from rclpy.exceptions import ParameterUninitializedException
from rclpy.parameter import Parameter

_TYPES = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
          float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}


def declare_parameters(node, defaults: dict, descriptions: dict | None = None) -> None:
    """Declare each name with its default; list defaults are double arrays (an empty list too).

    Integers given where a double is expected are accepted (dynamic typing), so a YAML
    `stiffness: [600, 600, ...]` works.
    """
    descriptions = descriptions or {}
    for name, default in defaults.items():
        if isinstance(default, (list, tuple)):
            ptype, default = ParameterType.PARAMETER_DOUBLE_ARRAY, [float(v) for v in default]
            if not default:  # rclpy types an empty list as a byte array: declare the type instead
                default = Parameter.Type.DOUBLE_ARRAY
        else:
            ptype = _TYPES[type(default)]
        descriptor = ParameterDescriptor(type=ptype, description=descriptions.get(name, ""), dynamic_typing=ptype == ParameterType.PARAMETER_DOUBLE)
        node.declare_parameter(name, default, descriptor)


def parameter_values(node, names) -> dict:
    """Current values as plain Python (lists for arrays; [] for an unset array)."""
    out = {}
    for name in names:
        try:
            value = node.get_parameter(name).value
        except ParameterUninitializedException:  # a typed, empty array parameter
            value = []
        out[name] = list(value) if isinstance(value, (list, tuple)) or hasattr(value, "tolist") else value
    return out


def run(node_class, args=None) -> None:
    """rclpy.init, spin the node until Ctrl-C / SIGTERM / shutdown, then let it write its final stats."""
    import rclpy
    from rclpy.executors import ExternalShutdownException

    rclpy.init(args=args)
    node = node_class()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.on_shutdown()
        node.destroy_node()
        if rclpy.ok():
            rclpy.try_shutdown()
