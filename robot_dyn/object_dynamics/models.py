"""Learned particle dynamics: a graph neural network over the object and tool particles, and the
flat MLP and zero-motion baselines, behind one interface.

Every model maps the recent history of the object particles, objects (B, H+1, N, 3) m, and of the
tool particle, tool (B, H+1, 3) m (index -1 is now), and the tool's next position tool_next (B, 3) m
to the object particles' next positions (B, N, 3) m; world frame, one step (the dataset's step_s)
ahead. `rollout` chains steps for a given tool path.

The GNN (ParticleGNN) follows the interaction networks of Zhang, Zhang, Li (CoRL 2024), after
Battaglia et al. 2016 and Sanchez-Gonzalez et al. 2020:
- Nodes: the N object particles and the tool. Node features: a tool flag, the node's last H
  displacements (velocities per step) and, on the tool, its action (tool_next - tool now); all
  lengths divided by `length_scale`, so a centimetre is about 1. No absolute position enters,
  so the model is the same anywhere on the table.
- Edges, rebuilt every step from the current positions: each object particle receives from its
  `max_neighbours` nearest object particles within `object_radius`, and from the tool when the
  tool is within `tool_radius` (3D distance: a tool lifted above the rope has no edge). Edge
  features: the sender's position relative to the receiver's (/length_scale), its length and a
  tool-edge flag.
- Encode nodes and edges (MLPs), `message_steps` rounds of message passing with residual updates
  (edge MLP on [edge, sender, receiver]; sum of incoming edges per node by index_add_; node MLP
  on [node, sum]), decode each object node's displacement.
Message passing gathers and scatters by index (index_select / index_add_) over the flattened batch,
so B samples cost B times one, with no dense N x N incidence matrices.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import nn

KINDS = ("gnn", "mlp", "spring_mass", "zero_motion")


@dataclass(frozen=True)
class ModelConfig:
    """kind: gnn | mlp | spring_mass | zero_motion; history H (past steps each node's velocity covers); lengths m.

    object_radius: object-object edges up to this distance (about two rope spacings);
    tool_radius: tool-object edges up to this distance (tip radius + rope radius + a step of travel);
    max_neighbours: object edges per receiver; hidden: feature width; message_steps: rounds;
    length_scale: the unit lengths are divided by (about one step of tool travel);
    n_particles: object particles (the MLP's input size; the GNN takes any N).
    Defaults: a rope's particles at 15 mm have 4 neighbours within 35 mm; width 64 trains on a 2-core
    CPU in minutes (held-out MDE at 10 steps 6.9 mm after 1,500 steps on 20 pushes, as good as width
    128 after 600, at a quarter of the cost per step)."""

    kind: str = "gnn"
    history: int = 2
    object_radius: float = 0.035
    tool_radius: float = 0.045
    max_neighbours: int = 4
    hidden: int = 64
    message_steps: int = 3
    length_scale: float = 0.01
    n_particles: int = 32

    def validated(self) -> "ModelConfig":
        if self.kind not in KINDS:
            raise ValueError(f"model 'kind' must be one of {list(KINDS)}, got {self.kind!r}")
        for name in ("history", "max_neighbours", "hidden", "message_steps", "n_particles"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "history" else 1):
                raise ValueError(f"model '{name}' must be a positive integer, got {value!r}")
        for name in ("object_radius", "tool_radius", "length_scale"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"model '{name}' must be a positive number (m), got {value!r}")
        return self

    @classmethod
    def from_dict(cls, data: dict, where: str) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{where}: unknown model field(s) {unknown}")
        return cls(**data).validated()


def mlp(inputs: int, hidden: int, outputs: int, layers: int = 2, norm: bool = True) -> nn.Sequential:
    """`layers` hidden ReLU layers, a linear output, and a LayerNorm on it when `norm`."""
    parts, width = [], inputs
    for _ in range(layers):
        parts += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    parts.append(nn.Linear(width, outputs))
    if norm:
        parts.append(nn.LayerNorm(outputs))
    return nn.Sequential(*parts)


def check_inputs(objects: torch.Tensor, tool: torch.Tensor, tool_next: torch.Tensor, history: int) -> None:
    """ValueError naming the argument whose shape does not fit (B, H+1, N, 3), (B, H+1, 3), (B, 3)."""
    if objects.ndim != 4 or objects.shape[1] != history + 1 or objects.shape[3] != 3:
        raise ValueError(f"objects must have shape (B, {history + 1}, N, 3), got {tuple(objects.shape)}")
    batch = objects.shape[0]
    if tool.shape != (batch, history + 1, 3):
        raise ValueError(f"tool must have shape ({batch}, {history + 1}, 3), got {tuple(tool.shape)}")
    if tool_next.shape != (batch, 3):
        raise ValueError(f"tool_next must have shape ({batch}, 3), got {tuple(tool_next.shape)}")


def build_edges(positions: torch.Tensor, config: ModelConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Edges of a batch of graphs, positions (B, N+1, 3) m with the tool last: (senders (E,), receivers
    (E,)) as indices into the flattened B*(N+1) nodes, and a tool-edge flag (E,) bool. Only object
    particles receive."""
    batch, nodes, _ = positions.shape
    n = nodes - 1
    objects = positions[:, :n]
    distance = torch.cdist(objects, objects)  # (B, N receivers, N senders)
    distance = distance.masked_fill(torch.eye(n, dtype=torch.bool, device=positions.device), float("inf"))
    distance = distance.masked_fill(distance > config.object_radius, float("inf"))
    k = min(config.max_neighbours, n - 1)
    nearest, senders = distance.topk(k, dim=2, largest=False)
    b, r, j = torch.nonzero(torch.isfinite(nearest), as_tuple=True)
    offset = b * nodes
    object_senders, object_receivers = offset + senders[b, r, j], offset + r
    tool_distance = torch.linalg.norm(objects - positions[:, n:], dim=2)  # (B, N)
    tb, tr = torch.nonzero(tool_distance < config.tool_radius, as_tuple=True)
    tool_senders, tool_receivers = tb * nodes + n, tb * nodes + tr
    senders = torch.cat([object_senders, tool_senders])
    receivers = torch.cat([object_receivers, tool_receivers])
    is_tool = torch.cat([torch.zeros_like(object_senders, dtype=torch.bool), torch.ones_like(tool_senders, dtype=torch.bool)])
    return senders, receivers, is_tool


class EdgeUpdate(nn.Module):
    """mlp(3 * width, width, width) on [edge, sender, receiver], with its first layer split in three: the
    sender's and receiver's parts are applied once per node and then gathered, not once per edge (a
    graph has several edges per node), which is the same function at a fraction of the cost."""

    def __init__(self, width: int):
        super().__init__()
        self.edge = nn.Linear(width, width)
        self.sender = nn.Linear(width, width, bias=False)
        self.receiver = nn.Linear(width, width, bias=False)
        self.rest = nn.Sequential(nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width),
                                  nn.LayerNorm(width))

    def forward(self, e: torch.Tensor, h: torch.Tensor, senders: torch.Tensor, receivers: torch.Tensor) -> torch.Tensor:
        return self.rest(self.edge(e) + self.sender(h).index_select(0, senders) + self.receiver(h).index_select(0, receivers))


class ParticleGNN(nn.Module):
    """The interaction network described in the module notes."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config.validated()
        h, hist = config.hidden, config.history
        self.node_encoder = mlp(1 + 3 * hist + 3, h, h)
        self.edge_encoder = mlp(3 + 1 + 1, h, h)
        self.edge_updates = nn.ModuleList(EdgeUpdate(h) for _ in range(config.message_steps))
        self.node_updates = nn.ModuleList(mlp(2 * h, h, h) for _ in range(config.message_steps))
        self.decoder = mlp(h, h, 3, norm=False)

    def forward(self, objects: torch.Tensor, tool: torch.Tensor, tool_next: torch.Tensor) -> torch.Tensor:
        c = self.config
        check_inputs(objects, tool, tool_next, c.history)
        batch, _, n, _ = objects.shape
        nodes = torch.cat([objects, tool[:, :, None]], dim=2)  # (B, H+1, N+1, 3)
        now = nodes[:, -1]
        scale = c.length_scale
        velocities = (nodes[:, 1:] - nodes[:, :-1]).permute(0, 2, 1, 3).reshape(batch, n + 1, 3 * c.history) / scale
        action = torch.zeros(batch, n + 1, 3, dtype=objects.dtype, device=objects.device)
        action[:, n] = (tool_next - tool[:, -1]) / scale
        flag = torch.zeros(batch, n + 1, 1, dtype=objects.dtype, device=objects.device)
        flag[:, n] = 1.0
        x = torch.cat([flag, velocities, action], dim=2).reshape(batch * (n + 1), -1)
        senders, receivers, is_tool = build_edges(now, c)
        flat = now.reshape(-1, 3)
        relative = (flat[senders] - flat[receivers]) / scale
        edge = torch.cat([relative, relative.norm(dim=1, keepdim=True), is_tool[:, None].to(objects.dtype)], dim=1)
        h, e = self.node_encoder(x), self.edge_encoder(edge)
        for edge_update, node_update in zip(self.edge_updates, self.node_updates):
            e = e + edge_update(e, h, senders, receivers)
            incoming = torch.zeros_like(h).index_add_(0, receivers, e)
            h = h + node_update(torch.cat([h, incoming], dim=1))
        displacement = self.decoder(h).reshape(batch, n + 1, 3)[:, :n] * scale
        return objects[:, -1] + displacement


class FlatMLP(nn.Module):
    """Baseline: one MLP on the flattened state -- every particle's position relative to the tool, all
    velocities over the history, the tool's action -- to every particle's displacement. It sees the
    whole rope at once, but must learn each particle's role from its index."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config.validated()
        n, hist = config.n_particles, config.history
        inputs = 3 * n + 3 * (n + 1) * hist + 3
        self.net = mlp(inputs, 4 * config.hidden, 3 * n, layers=3, norm=False)

    def forward(self, objects: torch.Tensor, tool: torch.Tensor, tool_next: torch.Tensor) -> torch.Tensor:
        c = self.config
        check_inputs(objects, tool, tool_next, c.history)
        if objects.shape[2] != c.n_particles:
            raise ValueError(f"objects: this MLP takes {c.n_particles} particles, got {objects.shape[2]}")
        batch = objects.shape[0]
        nodes = torch.cat([objects, tool[:, :, None]], dim=2)
        relative = (objects[:, -1] - tool[:, -1, None]) / c.length_scale
        velocities = (nodes[:, 1:] - nodes[:, :-1]) / c.length_scale
        action = (tool_next - tool[:, -1]) / c.length_scale
        x = torch.cat([relative.reshape(batch, -1), velocities.reshape(batch, -1), action], dim=1)
        return objects[:, -1] + self.net(x).reshape(batch, -1, 3) * c.length_scale


class ZeroMotion(nn.Module):
    """Baseline: nothing moves. The floor every model must beat clearly."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config.validated()

    def forward(self, objects: torch.Tensor, tool: torch.Tensor, tool_next: torch.Tensor) -> torch.Tensor:
        check_inputs(objects, tool, tool_next, self.config.history)
        return objects[:, -1].clone()


def build_model(config: ModelConfig) -> nn.Module:
    """An untrained model of config.kind (the spring-mass model with its initial parameters)."""
    from robot_dyn.object_dynamics.spring_mass import SpringMass

    kinds = {"gnn": ParticleGNN, "mlp": FlatMLP, "spring_mass": SpringMass, "zero_motion": ZeroMotion}
    return kinds[config.validated().kind](config)


def rollout(model: nn.Module, objects: torch.Tensor, tool: torch.Tensor, tool_path: torch.Tensor) -> torch.Tensor:
    """Predicted object particles (B, K, N, 3) m along a tool path (B, K, 3) m, from the histories objects
    (B, H+1, N, 3) and tool (B, H+1, 3): each step's prediction enters the next step's history."""
    predictions = []
    for k in range(tool_path.shape[1]):
        nxt = model(objects, tool, tool_path[:, k])
        predictions.append(nxt)
        objects = torch.cat([objects[:, 1:], nxt[:, None]], dim=1)
        tool = torch.cat([tool[:, 1:], tool_path[:, k, None]], dim=1)
    return torch.stack(predictions, dim=1)


def rollout_final(model: nn.Module, objects: torch.Tensor, tool: torch.Tensor, tool_path: torch.Tensor,
                  steps: torch.Tensor) -> torch.Tensor:
    """The object particles (B, N, 3) m after each sample's own number of steps (B,) along its tool path
    (B, K, 3), from the histories as in `rollout`. The same as rollout(...)[b, steps[b] - 1], computed
    for a shrinking batch: samples are ordered by their steps, and those done drop out (planning rolls out
    pushes of different lengths at once)."""
    order = torch.argsort(steps, descending=True)
    objects, tool, tool_path, steps = objects[order], tool[order], tool_path[order], steps[order]
    final = objects[:, -1].clone()
    for k in range(int(steps[0])):
        active = int((steps > k).sum())
        objects, tool = objects[:active], tool[:active]
        nxt = model(objects, tool, tool_path[:active, k])
        final[:active] = nxt
        objects = torch.cat([objects[:, 1:], nxt[:, None]], dim=1)
        tool = torch.cat([tool[:, 1:], tool_path[:active, k, None]], dim=1)
    return final[torch.argsort(order)]


# --- checkpoints ---------------------------------------------------------------

def save_model(out, model: nn.Module, meta: dict) -> None:
    """out/model.safetensors (the weights; none for zero motion) and out/model.json: the model's config
    under 'model' and `meta` (what it was trained on and how)."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(out / "model.safetensors"))
    (out / "model.json").write_text(json.dumps({**meta, "model": asdict(model.config)}, indent=2))


def load_model(path) -> tuple[nn.Module, dict]:
    """(the model in eval mode, model.json) of a folder written by save_model; ValueError names the file
    and what is wrong (missing, malformed, weights that do not fit the config)."""
    from robot_dyn.imitation.encoders import load_weights

    path = Path(path)
    file = path / "model.json"
    try:
        meta = json.loads(file.read_text())
        config = ModelConfig.from_dict(meta["model"], str(file))
        for key in ("step_s", "source"):
            if key not in meta:
                raise KeyError(key)
    except FileNotFoundError:
        raise ValueError(f"{file}: missing (not a dynamics model folder: train one with 'robot-dyn train dynamics')") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{file}: not a dynamics model's description ({exc!r})") from None
    model = build_model(config)
    load_weights(model, path / "model.safetensors", f"a {config.kind} of {asdict(config)}")
    return model.eval(), meta
