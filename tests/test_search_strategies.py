"""Each strategy's update rule on a known toy reward, determinism and state round-trips."""

from __future__ import annotations

import io

import pytest
import torch

from search.dedup import distinct_candidates
from search.space import Space
from search.strategies import STRATEGIES, make_strategy

SPACE = Space(core_units=[1, 2])


def toy_reward(tokens: list[str]) -> float:
    """1 when the final binary function is a product, else 0."""
    return 1.0 if tokens[-1] == "mul" else 0.0


def run_toy(name: str, batches: int, batch_size: int = 16, **opts) -> list[float]:
    strat = make_strategy(name, SPACE, seed=3, **opts)
    hit_rate = []
    for _ in range(batches):
        props = strat.propose(batch_size)
        for p in props:
            SPACE.check(p)
        rewards = [toy_reward(p) for p in props]
        strat.learn(props, rewards)
        hit_rate.append(sum(rewards) / len(rewards))
    return hit_rate


@pytest.mark.parametrize("name, batches", [("ppo", 20), ("reinforce", 40), ("evolution", 40)])
def test_learning_strategies_prefer_the_rewarded_token(name, batches):
    rates = run_toy(name, batches=batches)
    late = sum(rates[-5:]) / 5
    # The first batch is (near) uniform, 1/10 on "mul"; each learner must concentrate on it.
    assert rates[0] < 0.35
    assert late > 0.7, rates


def test_random_search_does_not_learn():
    rates = run_toy("random", batches=40)
    assert sum(rates) / len(rates) < 0.2


def test_ppo_takes_several_clipped_steps_per_batch():
    """With clip 0 the ratio is pinned to 1: PPO's update equals one REINFORCE-like step per epoch."""
    strat = make_strategy("ppo", SPACE, seed=0, epochs=3)
    before = [p.detach().clone() for p in strat.controller.parameters()]
    props = strat.propose(8)
    strat.learn(props, [toy_reward(p) + 0.1 * i for i, p in enumerate(props)])
    moved = sum(
        float((a - b.detach()).abs().sum())
        for a, b in zip(before, strat.controller.parameters(), strict=True)
    )
    assert moved > 0
    assert strat.opt.state_dict()["state"][0]["step"].item() == 3
    assert strat.pending == []


def test_reinforce_baseline_is_a_moving_average():
    strat = make_strategy("reinforce", SPACE, seed=0, baseline_decay=0.5)
    props = strat.propose(4)
    strat.learn(props, [1.0, 1.0, 0.0, 0.0])
    assert strat.baseline == pytest.approx(0.5)  # first batch: its mean
    strat.learn(strat.propose(4), [1.0] * 4)
    assert strat.baseline == pytest.approx(0.5 * 0.5 + 0.5 * 1.0)


def test_evolution_mutates_one_token_of_a_tournament_winner():
    strat = make_strategy("evolution", Space(), seed=0, population=4, sample=4)
    parents = strat.propose(4)
    strat.learn(parents, [0.1, 0.9, 0.2, 0.3])
    for child in strat.propose(20):
        diff = sum(a != b for a, b in zip(child, parents[1], strict=True))
        assert diff == 1  # sample == population: the winner is always the best
    strat.learn(strat.propose(4), [0.0] * 4)
    assert len(strat.population) == 4  # aging: the oldest left


def test_exhaustive_proposes_each_distinct_candidate_once():
    sp = Space(unary=["x", "neg", "sin", "beta"], binary=["add", "mul", "max"])
    strat = make_strategy("exhaustive", sp, seed=0)
    seen = []
    while not strat.exhausted:
        seen += strat.propose(7)
    cands, stats = distinct_candidates(sp, sp.enumerate(1))
    assert [c.tokens for c in cands] == seen
    assert len(seen) == stats.distinct < stats.raw


@pytest.mark.parametrize("name", STRATEGIES)
def test_same_seed_same_proposals_and_state_round_trip(name):
    sp = Space(unary=["x", "neg", "sin", "tanh", "sigmoid"], binary=["add", "mul", "max", "min"])
    a = make_strategy(name, sp, seed=7)
    b = make_strategy(name, sp, seed=7)
    for _ in range(2):
        pa, pb = a.propose(5), b.propose(5)
        assert pa == pb
        a.learn(pa, [toy_reward(p) for p in pa])
        b.learn(pb, [toy_reward(p) for p in pb])
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    c = make_strategy(name, sp, seed=99)
    c.load_state_dict(torch.load(buf, weights_only=True))
    for _ in range(2):
        pa, pc = a.propose(5), c.propose(5)
        assert pa == pc
        a.learn(pa, [toy_reward(p) for p in pa])
        c.learn(pc, [toy_reward(p) for p in pc])


def test_unknown_strategy_and_option():
    with pytest.raises(ValueError, match="unknown strategy"):
        make_strategy("hillclimb", SPACE, 0)
    with pytest.raises(ValueError, match="unknown option"):
        make_strategy("random", SPACE, 0, lr=0.1)
