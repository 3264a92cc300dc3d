"""A learned model as the controller's feedforward: same numbers as torch, never garbage."""
import numpy as np
import pytest
import torch

from robot_dyn.control.outer_loop import OuterLoop, OuterLoopConfig
from robot_dyn.dynamics import RigidBody
from robot_dyn.inverse_dynamics.models import InverseDynamicsModel
from robot_dyn.inverse_dynamics.online import LearnedFeedforward
from robot_dyn.robots import load_robot

RB = RigidBody(load_robot("panda"))


def _perturbed(kind):
    model = InverseDynamicsModel(kind, RB, hidden=24).eval()
    if model.residual is not None:
        torch.manual_seed(0)
        with torch.no_grad():
            for p in model.residual.parameters():
                p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("kind", ["nominal", "identified", "blackbox", "hybrid"])
def test_numpy_inference_equals_the_torch_model(kind):
    model = _perturbed(kind)
    ff = LearnedFeedforward(model, RB, robot_compensates_gravity=False)
    q, qd, qdd = np.random.default_rng(1).normal(0, 0.5, (3, 30, 7))
    expected = model.predict(q, qd, qdd)
    for k in range(30):
        np.testing.assert_allclose(ff.predict(q[k], qd[k], qdd[k]), expected[k], atol=1e-10)
        if ff.gru is not None:
            ff._h_before = ff._h = ff.gru(np.concatenate([q[k], qd[k], qdd[k]]), ff._h)[1]


def test_online_state_advances_at_the_training_rate_and_predicts_from_the_state_before():
    """Driven at 500 Hz, a 250 Hz model sees every other measured sample, and the prediction for
    sample k uses the state before k (as in training, where y_k = f(h_k-1, x_k))."""
    model = _perturbed("hybrid")
    ff = LearnedFeedforward(model, RB, robot_compensates_gravity=False)
    q, qd, qdd = np.random.default_rng(2).normal(0, 0.5, (3, 20, 7))
    ff._qdd = np.zeros(7)
    outputs = []
    for k in range(20):  # 500 Hz ticks
        ff.observe(k * 0.002, q[k], qd[k])
        outputs.append(ff.predict(q[k], qd[k], qdd[k]))
    assert ff._samples.last == 18 * 0.002  # ten 250 Hz samples: 0, 4, ..., 36 ms
    # At a sample tick the prediction equals the model's with the history of earlier samples only.
    replay = LearnedFeedforward(model, RB, robot_compensates_gravity=False)
    np.testing.assert_allclose(outputs[0], replay.predict(q[0], qd[0], qdd[0]), atol=1e-12)


def test_gravity_is_left_out_when_the_robot_compensates_it():
    ff_with = LearnedFeedforward(_perturbed("identified"), RB, robot_compensates_gravity=False)
    ff_without = LearnedFeedforward(_perturbed("identified"), RB, robot_compensates_gravity=True)
    q, z = RB.robot.home, np.zeros(7)
    np.testing.assert_allclose(ff_with.torque(q, z, z)[0] - ff_without.torque(q, z, z)[0], RB.gravity(q), atol=1e-9)


def test_garbage_output_falls_back_to_nominal_and_is_reported():
    model = _perturbed("hybrid")
    with torch.no_grad():
        model.residual.head.bias.fill_(1e6)  # a broken model
    loop = OuterLoop(RB.robot, OuterLoopConfig(feedforward="hybrid"), learned=LearnedFeedforward(model, RB, True))
    loop.start(0.0, RB.robot.home)
    ref = loop.tick(0.002)
    np.testing.assert_allclose(ref.tau_ff, RB.rnea(ref.q, ref.qd, ref.qdd) - RB.gravity(ref.q), atol=1e-9)
    assert loop.learned_fallbacks == 1 and "nominal used" in loop.events[-1]


def test_learned_mode_without_a_model_is_refused():
    with pytest.raises(ValueError, match="needs a learned model"):
        OuterLoop(RB.robot, OuterLoopConfig(feedforward="hybrid"))
