"""Declaring a node's ROS parameters from a dict of defaults, and reading them back as plain values."""
from __future__ import annotations

import gc
import inspect
import os

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


def signed(callback):
    """`callback` with its (empty) signature attached: rclpy inspects a timer callback's signature at
    every call, to hand it a TimerInfo if it asks for one, which cost the sim's 500 Hz timer 0.1 ms a
    call (inspect.signature returns an attached one at once)."""
    def call():
        callback()

    call.__signature__ = inspect.Signature()
    return call


def _each_thread(apply) -> None:
    """apply(thread id) for this process's threads (a scheduling policy or niceness is per thread on
    Linux: DDS's own threads too); threads started afterwards inherit it from their creator."""
    for task in os.listdir("/proc/self/task"):
        try:
            apply(int(task))
        except ProcessLookupError:  # a thread that has just ended
            pass


REALTIME_FIFO_PRIORITY = 40  # below the kernel's own real-time threads (50 for IRQ threads on PREEMPT_RT)
REALTIME_NICENESS = -10


def realtime_priority(log) -> None:
    """Give this process's threads a real-time policy, as ros2_control's controller manager does: a
    loop that must answer within its period should not wait behind other work.

    SCHED_FIFO at REALTIME_FIFO_PRIORITY where permitted (root, CAP_SYS_NICE or an rtprio limit): the
    thread runs as soon as its message arrives, whatever else the machine runs. A niceness only
    weighs this process against others of its own session (Linux's autogroups), so a busy process
    started from another terminal took its core's share regardless: with such a process keeping one
    core busy, niceness -10 left the robot layer without a reference 29 times in 60 s of motion and
    0.43 % of references late (Panda); SCHED_FIFO, 0-2 times (0 with the 8 ms extrapolation).
    SCHED_RESET_ON_FORK: the processes and threads this one starts afterwards (an MPC solve, a
    camera renderer) run at the normal policy, and never hold up the loop. The kernel
    keeps 5 % of every second for normal tasks (sched_rt_runtime_us), so a runaway loop cannot lock
    a core. Where FIFO is not permitted, niceness -10; where that is not either, say so once and go
    on at the normal priority."""
    fifo = os.SCHED_FIFO | os.SCHED_RESET_ON_FORK
    try:
        _each_thread(lambda tid: os.sched_setscheduler(tid, fifo, os.sched_param(REALTIME_FIFO_PRIORITY)))
        return
    except PermissionError:
        pass
    except (AttributeError, OSError) as exc:
        log.warning(f"could not set a real-time scheduling policy: {exc}")
    try:
        _each_thread(lambda tid: os.setpriority(os.PRIO_PROCESS, tid, REALTIME_NICENESS))
    except PermissionError:
        log.warning(f"could not raise the priority (SCHED_FIFO or niceness {REALTIME_NICENESS} need root or CAP_SYS_NICE, "
                    "e.g. 'ulimit -r 40 -e 30' or rtprio and nice limits in /etc/security/limits.conf): other load may "
                    "delay this node")
    except (AttributeError, OSError) as exc:
        log.warning(f"could not raise the priority: {exc}")


def batch_scheduling() -> None:
    """Run this process's threads (and those and the processes they start from now on) under Linux's
    SCHED_BATCH policy: its wakeups do not preempt whatever runs on the core.

    For the lockstep sim, a throughput computation: every message of the sim and controller's
    ping-pong otherwise woke its reader onto the sender's core, and with the default policy the
    graph ran 2.4x real time using 1.45 ms of CPU a tick; under SCHED_BATCH, 2.7x with 1.25 ms
    (median of 4 runs each, 2 cores). Never in real time, where a reference must go out now."""
    if hasattr(os, "SCHED_BATCH"):
        _each_thread(lambda tid: os.sched_setscheduler(tid, os.SCHED_BATCH, os.sched_param(0)))


def run(node_class, args=None) -> None:
    """Start rclpy, spin the node until SIGINT or SIGTERM, then let it write its final stats and exit 0.

    The events executor (rclpy.experimental): a JointState round trip between two processes took
    p50 / p99 310 / 451 us with it against 709 / 3688 us with the default executor, whose wait set
    is rebuilt in Python on every spin. Its spin() ran no callback in rclpy 9.1.2 (the PyPI wheels),
    so it is spun one event at a time. A signal only sets a flag that the loop reads between
    callbacks: rclpy's own handler shut the context down under a running callback, whose publish
    then failed with a traceback.
    """
    import signal

    import rclpy
    from rclpy.experimental import EventsExecutor
    from rclpy.signals import SignalHandlerOptions

    stop = []
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.append(True))
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = node_class()
    # What starting made (modules, models, compiled problems: 150k objects in the controller) is never
    # garbage: with it frozen, a full collection no longer stops the loop (it took 76 ms, 38 ticks).
    gc.freeze()
    executor = EventsExecutor(context=node.context)
    executor.add_node(node)
    # now that every thread exists (the executor starts its timers' thread): a policy applies per thread
    scheduling = getattr(node, "scheduling", None)
    if scheduling == "batch":
        batch_scheduling()
    elif scheduling == "realtime":
        realtime_priority(node.get_logger())
    try:
        while not stop and rclpy.ok(context=node.context):
            executor.spin_once(timeout_sec=0.1)
    finally:
        node.on_shutdown()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
