"""AMC's DDPG agent (Lillicrap et al. 2016, as He et al. 2018 configure it): an actor that maps a layer's state to a
ratio, a critic that scores (state, ratio), target copies of both updated softly, and a replay buffer.

Choices follow the AMC reference code: two hidden layers of 300 units, a sigmoid actor output (scaled to the
action range [lbound, 1], which the reference leaves at [0, 1]), Adam (actor 1e-4,
critic 1e-3), batch 64, tau 0.01, discount 1, replay memory of 100 transitions per layer; exploration is a normal
distribution truncated to [lbound, 1] around the actor's output, its sigma 0.5 decaying by 0.95 per episode after
the warm-up; each sampled batch's rewards are centred on a moving baseline (alpha 0.5) before the critic regresses on
them. Every random draw comes from one seeded generator, so a search is deterministic under its seed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class AgentConfig:
    hidden: int = 300
    lr_actor: float = 1e-4
    lr_critic: float = 1e-3
    batch_size: int = 64
    tau: float = 0.01
    discount: float = 1.0
    memory_per_layer: int = 100
    init_sigma: float = 0.5
    sigma_decay: float = 0.95
    baseline_alpha: float = 0.5
    init_w: float = 3e-3


def _mlp(inputs: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())


class Actor(nn.Module):
    """A sigmoid scaled to [lbound, 1], the range actions are taken in, so the critic is never asked about actions
    it has not seen (with a plain [0, 1] sigmoid the actor can drift below lbound, where the critic extrapolates)."""

    def __init__(self, states: int, hidden: int, init_w: float, lbound: float) -> None:
        super().__init__()
        self.body = _mlp(states, hidden)
        self.out = nn.Linear(hidden, 1)
        self.lbound = lbound
        nn.init.uniform_(self.out.weight, -init_w, init_w)
        nn.init.uniform_(self.out.bias, -init_w, init_w)

    def forward(self, s: Tensor) -> Tensor:
        return self.lbound + (1.0 - self.lbound) * torch.sigmoid(self.out(self.body(s)))


class Critic(nn.Module):
    def __init__(self, states: int, hidden: int, init_w: float) -> None:
        super().__init__()
        self.state = nn.Linear(states, hidden)
        self.action = nn.Linear(1, hidden)
        self.hidden = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, 1)
        nn.init.uniform_(self.out.weight, -init_w, init_w)
        nn.init.uniform_(self.out.bias, -init_w, init_w)

    def forward(self, s: Tensor, a: Tensor) -> Tensor:
        h = F.relu(self.state(s) + self.action(a))
        return self.out(F.relu(self.hidden(h)))


class ReplayBuffer:
    """A ring of (state, action, reward, next state, done) rows, sampled uniformly."""

    def __init__(self, capacity: int, states: int) -> None:
        self.capacity, self.size, self.next = capacity, 0, 0
        self.s = torch.zeros(capacity, states)
        self.a = torch.zeros(capacity, 1)
        self.r = torch.zeros(capacity, 1)
        self.s2 = torch.zeros(capacity, states)
        self.done = torch.zeros(capacity, 1)

    def add(self, s: Tensor, a: float, r: float, s2: Tensor, done: bool) -> None:
        i = self.next
        self.s[i], self.a[i], self.r[i], self.s2[i], self.done[i] = s, a, r, s2, float(done)
        self.next = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, n: int, gen: torch.Generator) -> tuple[Tensor, ...]:
        idx = torch.randint(self.size, (n,), generator=gen)
        return self.s[idx], self.a[idx], self.r[idx], self.s2[idx], self.done[idx]


def truncated_normal(mean: float, sigma: float, low: float, high: float, gen: torch.Generator) -> float:
    """One draw of N(mean, sigma) truncated to [low, high], by inverting the normal CDF."""
    if sigma <= 0:
        return min(max(mean, low), high)
    f64 = torch.float64
    normal = torch.distributions.Normal(torch.tensor(mean, dtype=f64), torch.tensor(sigma, dtype=f64))
    a, b = normal.cdf(torch.tensor(low, dtype=f64)), normal.cdf(torch.tensor(high, dtype=f64))
    u = a + (b - a) * torch.rand((), generator=gen, dtype=torch.float64)
    u = u.clamp(1e-12, 1 - 1e-12)
    return float(normal.icdf(u).clamp(low, high))


class DDPG:
    """The agent: `act` explores, `greedy` exploits, `remember` fills the replay memory, `update` learns."""

    def __init__(self, states: int, layers: int, cfg: AgentConfig, seed: int, lbound: float) -> None:
        self.cfg, self.lbound = cfg, lbound
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.actor = Actor(states, cfg.hidden, cfg.init_w, lbound)
            self.critic = Critic(states, cfg.hidden, cfg.init_w)
        self.actor_target, self.critic_target = copy.deepcopy(self.actor), copy.deepcopy(self.critic)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr_actor, foreach=True)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr_critic, foreach=True)
        self.memory = ReplayBuffer(cfg.memory_per_layer * layers, states)
        self.gen = torch.Generator().manual_seed(seed + 1)
        self.baseline: float | None = None

    def random_action(self) -> float:
        return float(self.lbound + (1.0 - self.lbound) * torch.rand((), generator=self.gen, dtype=torch.float64))

    @torch.no_grad()
    def greedy(self, state: Tensor) -> float:
        return float(self.actor(state[None])[0, 0])

    def act(self, state: Tensor, sigma: float) -> float:
        return truncated_normal(self.greedy(state), sigma, self.lbound, 1.0, self.gen)

    def sigma(self, episode: int, warmup: int) -> float:
        return self.cfg.init_sigma * self.cfg.sigma_decay ** max(episode - warmup, 0)

    def remember(self, s: Tensor, a: float, r: float, s2: Tensor, done: bool) -> None:
        self.memory.add(s, a, r, s2, done)

    def update(self) -> None:
        """One gradient step of critic and actor on a replay batch, then a soft update of the targets."""
        if self.memory.size == 0:
            return
        s, a, r, s2, done = self.memory.sample(self.cfg.batch_size, self.gen)
        mean = float(r.mean())
        old = mean if self.baseline is None else self.baseline
        self.baseline = old + self.cfg.baseline_alpha * (mean - old)
        r = r - self.baseline
        with torch.no_grad():
            target = r + self.cfg.discount * (1.0 - done) * self.critic_target(s2, self.actor_target(s2))
        critic_loss = F.mse_loss(self.critic(s, a), target)
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()
        actor_loss = -self.critic(s, self.actor(s)).mean()
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()
        self._soft_update(self.actor_target, self.actor)
        self._soft_update(self.critic_target, self.critic)

    @torch.no_grad()
    def _soft_update(self, target: nn.Module, source: nn.Module) -> None:
        """target <- (1 - tau) target + tau source."""
        torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), self.cfg.tau)
