"""search node: a search for an offset hole (robot_dyn.search), started on request -> /controller/twist_command
and /controller/wrench_command.

A call of the std_srvs/Trigger service /search/start plans a search with the configured strategy
(robot_dyn.search.execution.plan_search: a learned model's ergodic or sampling path and force, or the
spiral or random walk with a steady push) and runs the insert task's operator with it
(robot_dyn.tasks.insert_expert): align over the nominal hole, descend until the peg rests on the
fixture, follow the plan, pressing with the plan's force as a wrench the controller superposes on the
impedance, until the peg drops in; then press it home (press_home). It sees the measured peg tip
(forward kinematics of /joint_states with the peg) and the controller's desired pose, and sends at
rate_hz, stamped with the graph's clock, so a stalled node stops the arm by the controller's timeouts.
/search/stop ends a search. /search/events says when it started, when the peg touched, found (after
how many seconds of searching, the figure the benchmark reports), done or gave up.
"""
from __future__ import annotations

import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped, WrenchStamped
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger

from robot_dyn.bringup import schema
from robot_dyn.dynamics.rigid_body import RigidBody
from robot_dyn.nodes import wire
from robot_dyn.nodes.events import Events
from robot_dyn.nodes.messages import pose_to_arrays, twist_msg, wrench_msg
from robot_dyn.nodes.parameters import declare_parameters, parameter_values, run
from robot_dyn.robots import load_robot
from robot_dyn.robots.tools import with_tool
from robot_dyn.search.execution import LEARNED, STRATEGIES, SearchSettings, plan_search
from robot_dyn.search.model import load_search_model
from robot_dyn.tasks import load_task
from robot_dyn.tasks.insert_expert import InsertExpert, InsertExpertSettings

DEFAULTS = schema.defaults(schema.SEARCH)
DESCRIPTIONS = schema.descriptions(schema.SEARCH)
RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)  # as the teleop node's commands


class SearchNode(Node):
    def __init__(self):
        super().__init__("search")
        declare_parameters(self, DEFAULTS, DESCRIPTIONS)
        p = parameter_values(self, DEFAULTS)
        if p["strategy"] not in STRATEGIES:
            raise ValueError(f"parameter 'strategy' must be one of {list(STRATEGIES)}, got '{p['strategy']}'")
        if not p["rate_hz"] > 0:
            raise ValueError(f"parameter 'rate_hz' must be positive, got {p['rate_hz']}")
        if p["strategy"] in LEARNED and not p["model"]:
            raise ValueError(f"strategy '{p['strategy']}' learns from demonstrations: set parameter 'model' "
                             "(a folder from robot-dyn train search)")
        self.model = load_search_model(p["model"]) if p["model"] else None
        self.settings = SearchSettings(budget_s=p["budget_s"], speed=p["speed"]).validated()
        self.strategy, self.seed, self.press_home = p["strategy"], int(p["seed"]), bool(p["press_home"])
        self.task = load_task("insert", p["task_config"] or None)
        robot = with_tool(load_robot(p["robot"]), self.task.tool)
        self.rigid_body, self.frame_id = RigidBody(robot), robot.base_link
        self.joint_positions = wire.JointPositions(robot.joint_names)
        self.measured, self.pose = None, None  # the last /joint_states (CDR bytes); the desired pose (p, R)
        self.expert: InsertExpert | None = None  # the running search
        self.searches, self._reported = 0, set()  # searches started; milestones told of the running one
        self.twist_pub = self.create_publisher(TwistStamped, "/controller/twist_command", RELIABLE)
        self.wrench_pub = self.create_publisher(WrenchStamped, "/controller/wrench_command", RELIABLE)
        self.event = Events(self, "/search/events")
        self.create_subscription(JointState, "/joint_states", self.on_joint_state, 10, raw=True)
        self.create_subscription(PoseStamped, "/controller/desired_pose", self.on_desired_pose, 10)
        self.create_service(Trigger, "/search/start", self.on_start)
        self.create_service(Trigger, "/search/stop", self.on_stop)
        self.create_timer(1.0 / p["rate_hz"], self.tick)
        self.event(f"search ready: strategy {self.strategy}" + (f", model {p['model']}" if p["model"] else ""))

    def on_joint_state(self, data: bytes) -> None:
        self.measured = data  # decoded when the operator looks (at rate_hz, not the states' 500 Hz)

    def on_desired_pose(self, msg: PoseStamped) -> None:
        self.pose = pose_to_arrays(msg.pose)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def on_start(self, request, response):
        if self.expert is not None:
            response.success, response.message = False, "a search is running (/search/stop ends it)"
        elif self.measured is None or self.pose is None:
            response.success, response.message = False, "not ready: no joint state or desired pose yet"
        else:
            seed = self.seed + self.searches
            plan = plan_search(self.strategy, self.settings, np.random.default_rng(seed), self.model)
            settings = InsertExpertSettings(search_budget_s=self.settings.budget_s, stop_at_found=not self.press_home)
            self.expert, self._reported = InsertExpert(self.task.config, settings, seed=seed, plan=plan), set()
            self.searches += 1
            response.success, response.message = True, f"{self.strategy} search {self.searches} started (seed {seed})"
            self.event(response.message)
        return response

    def on_stop(self, request, response):
        if self.expert is None:
            response.success, response.message = False, "no search is running"
        else:
            self._finish(self._now(), "stopped on request")
            response.success, response.message = True, "stopped"
        return response

    def _tip_and_rotation(self) -> tuple[np.ndarray, np.ndarray]:
        p, R = self.rigid_body.ee_pose(self.joint_positions(self.measured))
        return self.task.tool.tip(p, R), R

    def tick(self) -> None:
        if self.expert is None:
            return
        now = self._now()
        try:
            tip, R = self._tip_and_rotation()
        except ValueError as exc:
            return self._finish(now, f"aborted: {exc}")
        pd, Rd = self.pose
        command = self.expert.command(now, tip, R, self.task.tool.tip(pd, Rd), {})
        self._report_progress()
        if command is None:
            return self._finish(now, "")
        stamp = self._now()  # stamped when sent, as a device's command
        self.twist_pub.publish(twist_msg(command, stamp, self.frame_id))
        if self.expert.wrench is not None:
            self.wrench_pub.publish(wrench_msg(self.expert.wrench, stamp, self.frame_id))

    def _report_progress(self) -> None:
        """Say, once each, what the search reached: the touch and the drop (after how long searching)."""
        entered = self.expert.entered_at
        if "search" in entered and "search" not in self._reported:
            self._reported.add("search")
            self.event(f"touched the fixture at t={entered['search']:.3f}: searching")
        if "insert" in entered and "insert" not in self._reported:
            self._reported.add("insert")
            began = entered.get("search", entered["insert"])
            self.event(f"found: the peg dropped in at t={entered['insert']:.3f} after {entered['insert'] - began:.2f} s "
                       f"of searching ({self.strategy})")

    def _finish(self, now: float, reason: str) -> None:
        entered = self.expert.entered_at
        if reason:
            self.event(f"search {reason} at t={now:.3f}", warn=True)
        elif "insert" not in entered:
            began = entered.get("search", now)
            self.event(f"gave up at t={now:.3f} after {now - began:.2f} s of searching ({self.strategy})", warn=True)
        else:
            self.event(f"done at t={now:.3f}" + (": the peg is home" if self.press_home else ""))
        self.twist_pub.publish(twist_msg(np.zeros(6), self._now(), self.frame_id))  # the arm brakes at once
        self.expert = None

    def on_shutdown(self) -> None:
        pass


def main(args=None):
    run(SearchNode, args)


if __name__ == "__main__":
    main()
