"""dynamics_planner node: pushes the rope toward a target shape with a particle dynamics model, in closed
loop, through the controller (robot_dyn.object_dynamics.pushing).

A call of the std_srvs/Trigger service /dynamics_planner/start begins a run: the target is the last point
set received on /dynamics_planner/target (PointCloud2, world frame), or else the `target` shape made from the
particles seen then. Each round plans on the newest /perception/particles (object particles, label 0; the
tool's, label 1, is left out) with robot_dyn.object_dynamics.planning.plan_push and the model (in a worker
thread, so the node keeps listening), and sends the push as one Cartesian path from the controller's desired
pose: transit above the push's start, lower, push at the planned speed, lift (/controller/cartesian_path; the
MPC and safety filter stay in the loop). Once the controller says the path is done and `settle_s` has passed,
the first particle cloud stamped after that is the push's outcome: its Chamfer distance to the target ends
the run (reached, or gave up after `max_pushes`) or starts the next round. A rejected or preempted path ends
the run. /dynamics_planner/stop ends it at once (a running path is finished by the controller).

Publishes /dynamics_planner/events (std_msgs/String: started, each plan with its planning time and predicted
cost, each outcome, reached / gave up / aborted), /dynamics_planner/target_points and
/dynamics_planner/predicted (PointCloud2, for RViz).
"""
from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import MultiDOFJointTrajectory

from robot_dyn.bringup import schema
from robot_dyn.dynamics.rigid_body import RigidBody
from robot_dyn.nodes import camera_messages as cm
from robot_dyn.nodes.events import EVENTS_QOS, Events
from robot_dyn.nodes.messages import cartesian_path_msg, pose_to_arrays, to_sec
from robot_dyn.nodes.parameters import declare_parameters, parameter_values, run
from robot_dyn.robots import load_robot

DEFAULTS = schema.defaults(schema.DYNAMICS_PLANNER)
DESCRIPTIONS = schema.descriptions(schema.DYNAMICS_PLANNER)
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
LEAD_S = 0.2  # s: a path starts this long after it is sent, so that it reaches the controller before it begins
PATH_GRACE_S = 10.0  # s past a path's planned end before a run gives up on the controller finishing it (time
# scaling slows a path while the arm lags its reference)
PATH_EVENT = re.compile(r"^cartesian path (done|rejected|preempted)")


def planner_from_parameters(p: dict):
    """(Shaping settings, planner config, planner(particles, target, height, seed), scene) from the node's
    parameters: the model folder's model on the CPU, the scene config's table, pusher and push speed."""
    import torch

    from robot_dyn.object_dynamics.models import load_model
    from robot_dyn.object_dynamics.planning import LearnedRollouts, PlannerConfig, plan_push
    from robot_dyn.object_dynamics.pushing import ShapingSettings
    from robot_dyn.perception.episodes import load_config

    if not p["model"]:
        raise ValueError("parameter 'model': a dynamics model folder (robot-dyn train dynamics) is needed")
    scene = load_config(p["scene_config"] or None)
    if p["threads"] > 0:
        torch.set_num_threads(int(p["threads"]))
    model, meta = load_model(p["model"])
    config = PlannerConfig(samples=int(p["samples"]), iterations=int(p["iterations"]),
                           elites=max(1, min(int(p["samples"]), int(p["samples"]) // 16)), speed=scene.push.speed,
                           workspace_x=tuple(scene.push.workspace_x), workspace_y=tuple(scene.push.workspace_y)).validated()
    settings = ShapingSettings(target=p["target"], max_pushes=int(p["max_pushes"]), reached=float(p["reached_m"]),
                               settle_s=float(p["settle_s"]), rope_length=scene.rope.length).validated()
    predictor = LearnedRollouts(model, meta["step_s"])
    return settings, config, (lambda particles, target, height, seed: plan_push(predictor, particles, target, height,
                                                                                 config, seed)), scene


class DynamicsPlannerNode(Node):
    def __init__(self):
        super().__init__("dynamics_planner")
        declare_parameters(self, DEFAULTS, DESCRIPTIONS)
        p = parameter_values(self, DEFAULTS)
        self.settings, self.config, self.planner, scene = planner_from_parameters(p)
        robot = load_robot(p["robot"])
        self.ee_frame, self.frame_id, self.seed = robot.ee_frame, p["world_frame"], int(p["seed"])
        self.push_rotation = RigidBody(robot).ee_pose(robot.home)[1]  # the pusher points down at home
        self.pusher_length, self.hover = scene.pusher.length, scene.push.hover
        self.height = scene.table.height + scene.pusher.tip_radius + scene.push.clearance
        self.particles, self.particles_stamp, self.pose, self.given_target = None, -1.0, None, None
        self.shaping, self.state, self.runs = None, "idle", 0
        self.pending, self.path_end, self.outcome_after = None, 0.0, 0.0
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="planning")
        self.path_pub = self.create_publisher(MultiDOFJointTrajectory, "/controller/cartesian_path", RELIABLE)
        self.target_pub = self.create_publisher(PointCloud2, "/dynamics_planner/target_points", LATCHED)
        self.predicted_pub = self.create_publisher(PointCloud2, "/dynamics_planner/predicted", LATCHED)
        self.event = Events(self, "/dynamics_planner/events")
        self.create_subscription(PointCloud2, "/perception/particles", self.on_particles, RELIABLE)
        self.create_subscription(PointCloud2, "/dynamics_planner/target", self.on_target, LATCHED)
        self.create_subscription(PoseStamped, "/controller/desired_pose", self.on_desired_pose, 10)
        self.create_subscription(String, "/controller/events", self.on_controller_event, EVENTS_QOS)
        self.create_service(Trigger, "/dynamics_planner/start", self.on_start)
        self.create_service(Trigger, "/dynamics_planner/stop", self.on_stop)
        self.create_timer(0.05, self.tick)
        self.event(f"dynamics planner ready: model {p['model']}, target {p['target']}, {self.config.samples} samples x "
                   f"{self.config.iterations} rounds, up to {self.settings.max_pushes} pushes")

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def on_particles(self, msg: PointCloud2) -> None:
        try:
            xyz, labels = cm.points_from_cloud(msg)
        except ValueError as exc:
            self.event(f"/perception/particles ignored: {exc}", warn=True)
            return
        self.particles = xyz if labels is None else xyz[labels == 0]
        self.particles_stamp = to_sec(msg.header.stamp)

    def on_target(self, msg: PointCloud2) -> None:
        try:
            xyz, _ = cm.points_from_cloud(msg)
            if len(xyz) < 3 or not np.all(np.isfinite(xyz)):
                raise ValueError(f"a target needs 3 or more finite points, got {len(xyz)}")
        except ValueError as exc:
            self.event(f"/dynamics_planner/target ignored: {exc}", warn=True)
            return
        self.given_target = xyz
        self.event(f"target of {len(xyz)} points received")

    def on_desired_pose(self, msg: PoseStamped) -> None:
        self.pose = pose_to_arrays(msg.pose)

    def on_controller_event(self, msg: String) -> None:
        match = PATH_EVENT.match(msg.data)
        if match is None or self.state != "pushing":
            return
        if match.group(1) == "done":
            self.state, self.outcome_after = "settling", self._now() + self.settings.settle_s
        else:
            self._finish(f"aborted: the controller said '{msg.data}'", warn=True)

    def on_start(self, request, response):
        from robot_dyn.object_dynamics.pushing import Shaping

        if self.state != "idle":
            response.success, response.message = False, "a run is going on (/dynamics_planner/stop ends it)"
        elif self.particles is None or self.pose is None:
            response.success, response.message = False, "not ready: no particles or desired pose yet"
        else:
            self.runs += 1
            self.shaping = Shaping(self.planner, self.settings, self.height, self.seed + self.runs, self.given_target)
            try:
                distance = self.shaping.observe(self.particles)
            except ValueError as exc:
                response.success, response.message = False, f"/perception/particles: {exc}"
                return response
            self.target_pub.publish(cm.particles_msg(self.shaping.target, np.zeros(len(self.shaping.target)),
                                                     self.particles_stamp, self.frame_id))
            response.success = True
            response.message = f"run {self.runs} started: Chamfer to the target {distance * 1e3:.1f} mm"
            self.event(response.message)
            self._next_round()
        return response

    def on_stop(self, request, response):
        if self.state == "idle":
            response.success, response.message = False, "no run is going on"
        else:
            self._finish("stopped on request", warn=True)
            response.success, response.message = True, "stopped"
        return response

    def _next_round(self) -> None:
        if self.shaping.outcome is not None:
            return self._finish(self.shaping.outcome)
        particles = self.particles
        started = time.perf_counter()
        self.pending = (self.worker.submit(self.shaping.plan, particles), started)
        self.state = "planning"

    def tick(self) -> None:
        if self.state == "planning" and self.pending[0].done():
            future, started = self.pending
            self.pending = None
            try:
                plan = future.result()
            except ValueError as exc:
                return self._finish(f"aborted: planning failed: {exc}", warn=True)
            self._send(plan, time.perf_counter() - started)
        elif self.state == "pushing" and self._now() > self.path_end:
            late = self._now() - self.path_end + PATH_GRACE_S
            self._finish(f"aborted: the controller has not finished the push's path {late:.0f} s after its planned end",
                         warn=True)
        elif self.state == "settling" and self._now() >= self.outcome_after and self.particles_stamp >= self.outcome_after:
            try:
                distance = self.shaping.observe(self.particles)
            except ValueError as exc:
                return self._finish(f"aborted: /perception/particles: {exc}", warn=True)
            self.event(f"push {self.shaping.pushes} done: Chamfer to the target {distance * 1e3:.1f} mm")
            self._next_round()

    def _send(self, plan, plan_s: float) -> None:
        from robot_dyn.object_dynamics.pushing import push_path

        t0 = self._now() + LEAD_S
        path, _ = push_path(plan, self.height, self.pose, self.push_rotation, self.pusher_length, t0, self.config,
                            self.hover)
        self.path_pub.publish(cartesian_path_msg(path, self.ee_frame, t0))
        self.path_end = path.t_end + PATH_GRACE_S
        self.predicted_pub.publish(cm.particles_msg(plan.predicted, np.zeros(len(plan.predicted)), self.particles_stamp,
                                                    self.frame_id))
        self.state = "pushing"
        self.event(f"push {self.shaping.pushes} planned in {plan_s:.2f} s ({plan.evaluated} pushes rolled out): start "
                   f"({plan.start[0]:.3f}, {plan.start[1]:.3f}) m, angle {np.degrees(plan.angle):.0f} deg, length "
                   f"{plan.length * 1e3:.0f} mm, predicted Chamfer {plan.cost * 1e3:.1f} mm")

    def _finish(self, text: str, warn: bool = False) -> None:
        self.event(text, warn=warn)
        self.state, self.shaping, self.pending = "idle", None, None

    def on_shutdown(self) -> None:
        self.worker.shutdown(wait=False, cancel_futures=True)


def main(args=None):
    run(DynamicsPlannerNode, args)


if __name__ == "__main__":
    main()
