"""The DDPG agent on its own: a toy environment whose best policy is known, and determinism under a seed."""

import torch

from prunekit.pruning.amc.agent import DDPG, AgentConfig, truncated_normal
from prunekit.pruning.amc.search import run_episodes


class FavourFirst:
    """Three layers; reward = a0 - a1 - a2 at the end of an episode: the best policy keeps layer 0 whole and prunes
    the others to the lower bound."""

    layers, state_size = 3, 4

    def reset(self):
        self.actions = []
        return self._state()

    def _state(self):
        t = len(self.actions)
        return torch.tensor([float(t == 0), float(t == 1), float(t == 2), self.actions[-1] if self.actions else 1.0])

    def step(self, action):
        self.actions.append(action)
        if len(self.actions) < 3:
            return self._state(), 0.0, False, {"action": action}
        a = self.actions
        return self._state(), a[0] - a[1] - a[2], True, {"action": action}


def greedy_policy(agent, env):
    state, policy = env.reset(), []
    for _ in range(env.layers):
        a = agent.greedy(state)
        policy.append(a)
        state, *_ = env.step(a)
    return policy


def test_agent_learns_the_known_best_policy():
    env = FavourFirst()
    cfg = AgentConfig(hidden=64, lr_actor=1e-3)  # smaller and faster than AMC's 300 / 1e-4: a quick test
    agent = DDPG(env.state_size, env.layers, cfg, seed=0, lbound=0.2)
    rewards = []
    run_episodes(env, agent, episodes=80, warmup=20, on_episode=lambda e, r, info: rewards.append(r))
    policy = greedy_policy(agent, env)
    assert policy[0] > 0.9 and policy[1] < 0.25 and policy[2] < 0.25, policy
    assert sum(rewards[-10:]) / 10 > sum(rewards[:20]) / 20 + 0.3  # exploitation beats the random warm-up


def test_search_is_deterministic_under_a_seed():
    def run(seed):
        env = FavourFirst()
        agent = DDPG(env.state_size, env.layers, AgentConfig(hidden=32), seed=seed, lbound=0.2)
        out = []
        run_episodes(env, agent, episodes=25, warmup=10, on_episode=lambda e, r, info: out.append(r))
        return out, greedy_policy(agent, env)

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_truncated_normal_stays_in_bounds():
    gen = torch.Generator().manual_seed(0)
    draws = [truncated_normal(0.95, 0.5, 0.2, 1.0, gen) for _ in range(500)]
    assert min(draws) >= 0.2 and max(draws) <= 1.0
    assert abs(sum(draws) / len(draws) - 0.95) < 0.35  # centred near the mean, folded by the upper bound
    assert truncated_normal(1.7, 0.0, 0.2, 1.0, gen) == 1.0
