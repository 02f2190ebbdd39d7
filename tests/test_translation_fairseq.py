"""The fairseq plugin with fairseq's own tools: real fairseq-train / fairseq-generate /
fairseq-interactive commands, checkpoint reload (CLI, in-process, hub interface), activation
swapping, gated FFNs and bf16.

The subprocesses run *without* TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD: the plugin itself must make
fairseq's checkpoints loadable under torch's weights-only default.

Isolation: `plugin.install()` patches fairseq and adds torch safe globals for the whole process.
Every test that installs it in Python runs its body in a fresh interpreter (`isolated`), so
no other test ever sees a patched fairseq or a widened weights-only allowlist.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from workbench.translation import kernel_report, prepare
from workbench.translation.config import DataConfig, SetConfig, TrainDataConfig

BIN = Path(sys.executable).parent
PLUGIN = (
    Path(__file__).resolve().parents[1]
    / "workbench"
    / "translation"
    / "user_dir"
    / "workbench_activations"
)
FORMULA = "x*sigmoid(beta*x)"  # deliberately not in canonical spelling
GATED = "glu(x * sigmoid(beta * x))"  # a gated formula with a per-channel parameter
FFN = 48  # FFN width of the tiny test models: gated ones get h = round(2/3 * 48) = 32


def isolated(fn, *args):
    """Run `fn(*args)` in a fresh interpreter and return its result; its assertion errors are
    raised here. `fn` must be a module-level function of this file."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def run(cmd: list[str], env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    """A fairseq command on one thread, without the weights-only escape hatch."""
    base = {k: v for k, v in os.environ.items() if k != "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"}
    base["OMP_NUM_THREADS"] = "1"
    base.update(env or {})
    return subprocess.run(cmd, capture_output=True, text=True, env=base, timeout=600, **kw)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # In-process fairseq on one thread: on a shared 2-core machine, two spinning OpenMP threads
    # per process slow everything down several times.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    cfg = DataConfig(
        train=TrainDataConfig(synthetic=300),
        dev=SetConfig(name="valid", synthetic=16),
        tests=[SetConfig(name="test", synthetic=21)],
        vocab_size=300,
        cache_dir=str(tmp_path_factory.mktemp("cache")),
        workers=1,
    )
    return prepare.prepare(cfg, log=lambda *_: None)


def train_cmd(data, save: Path, activation: str, *extra: str, updates: int = 6) -> list[str]:
    return [
        str(BIN / "fairseq-train"), str(data.bin_dir), "--cpu", "--user-dir", str(PLUGIN),
        "--arch", "transformer_tiny", "--encoder-ffn-embed-dim", str(FFN),
        "--decoder-ffn-embed-dim", str(FFN), "--share-all-embeddings",
        "--activation-fn", activation, "--optimizer", "adam", "--lr", "0.01",
        "--max-tokens", "2000", "--max-update", str(updates), "--save-dir", str(save),
        "--no-epoch-checkpoints", "--num-workers", "0", "--log-format", "simple", *extra,
    ]  # fmt: skip


def _train(data, save: Path, activation: str, *extra: str) -> subprocess.CompletedProcess:
    result = run(
        train_cmd(data, save, activation, *extra),
        env={kernel_report.ENV: str(save / "kernels")},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    save = tmp_path_factory.mktemp("ck")
    _train(data, save, FORMULA)
    return save / "checkpoint_last.pt"


@pytest.fixture(scope="module")
def gated(data, tmp_path_factory):
    """A gated Transformer trained by fairseq-train: (checkpoint, fairseq-train's log)."""
    save = tmp_path_factory.mktemp("gated")
    result = _train(data, save, GATED)
    return save / "checkpoint_last.pt", result.stdout + result.stderr


def _state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def generate(data, checkpoint: Path, subset: str = "test") -> list[str]:
    """fairseq-generate's `D-` lines (id, score, detokenized hypothesis), one sentence a batch."""
    result = run(
        [
            str(BIN / "fairseq-generate"),
            str(data.bin_dir),
            "--cpu",
            "--user-dir",
            str(PLUGIN),
            "--path",
            str(checkpoint),
            "--gen-subset",
            subset,
            "--beam",
            "2",
            "--batch-size",
            "1",
            "--required-batch-size-multiple",
            "1",
            "--max-len-b",
            "20",
            "--post-process",
            "sentencepiece",
            "--num-workers",
            "0",
        ]  # fmt: skip
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("D-")]
    return sorted(lines, key=lambda line: int(line.split("\t")[0][2:]))


def interactive(data, checkpoint: Path, sources: list[str]) -> list[str]:
    """fairseq-interactive's `D-` lines for raw source sentences (sentencepiece applied)."""
    result = run(
        [
            str(BIN / "fairseq-interactive"),
            str(data.bin_dir),
            "--cpu",
            "--user-dir",
            str(PLUGIN),
            "--path",
            str(checkpoint),
            "--beam",
            "2",
            "--max-len-b",
            "20",
            "--source-lang",
            "en",
            "--target-lang",
            "de",
            "--bpe",
            "sentencepiece",
            "--sentencepiece-model",
            str(data.spm_model),
        ],  # fmt: skip
        input="".join(s + "\n" for s in sources),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [line for line in result.stdout.splitlines() if line.startswith("D-")]


@pytest.mark.slow
def test_fairseq_train_and_generate_with_a_formula(data, trained):
    state = _state(trained)
    # The spec string is stored, canonicalised, never an object.
    spec = state["cfg"]["model"].activation_fn
    assert type(spec) is str and spec == "x * sigmoid(beta * x)"
    betas = {k: v for k, v in state["model"].items() if k.endswith("activation_fn.beta")}
    assert len(betas) == 4  # 2 encoder + 2 decoder layers of transformer_tiny
    assert all(v.shape == (FFN,) for v in betas.values())  # per channel of the FFN hidden layer
    assert any(not torch.allclose(v, torch.ones_like(v)) for v in betas.values())  # trained
    hyps = generate(data, trained)
    assert [int(line.split("\t")[0][2:]) for line in hyps] == list(range(21))


@pytest.mark.slow
def test_fairseq_train_rejects_an_unknown_activation_clearly(data, tmp_path):
    result = run(
        [
            str(BIN / "fairseq-train"),
            str(data.bin_dir),
            "--cpu",
            "--user-dir",
            str(PLUGIN),
            "--arch",
            "transformer_tiny",
            "--activation-fn",
            "x * frobnicate(x)",
            "--save-dir",
            str(tmp_path),
        ]  # fmt: skip
    )
    assert result.returncode != 0
    assert "--activation-fn" in result.stderr and "frobnicate" in result.stderr


def _check_install_is_idempotent_and_handles_swish() -> None:
    from fairseq import utils
    from fairseq.distributed import utils as distributed_utils
    from fairseq.modules import transformer_layer

    from workbench.translation import plugin

    plugin.install()
    patched = utils.get_activation_fn
    init = transformer_layer.TransformerEncoderLayerBase.__init__
    call_main = distributed_utils.call_main
    utils.import_user_module(argparse.Namespace(user_dir=str(PLUGIN)))  # as --user-dir does
    plugin.install()
    assert utils.get_activation_fn is patched
    assert transformer_layer.TransformerEncoderLayerBase.__init__ is init
    assert distributed_utils.call_main is call_main
    assert all(plugin.patch_status().values()) and len(plugin.patch_status()) == 6
    x = torch.linspace(-3, 3, 7)
    swish = utils.get_activation_fn("swish")  # fairseq's own returns the class nn.SiLU
    assert torch.allclose(swish(x), x * torch.sigmoid(x))  # β starts at 1
    assert utils.get_activation_fn("relu") is torch.nn.functional.relu  # native names unchanged
    assert plugin.activation_arg("max(x,sigmoid(x))") == "max(x, sigmoid(x))"
    assert plugin.activation_arg("glu( relu )") == "glu(relu)"
    with pytest.raises(argparse.ArgumentTypeError):
        plugin.activation_arg("nonsense(x")


@pytest.mark.slow
def test_plugin_install_is_idempotent_and_handles_swish():
    isolated(_check_install_is_idempotent_and_handles_swish)


def _bf16_config(bin_dir: str) -> dict:
    """fairseq's config for the workbench's bf16 command line, as fairseq-train builds it."""
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq.distributed import utils as distributed_utils

    from workbench.translation.config import ModelConfig, TrainConfig
    from workbench.translation.train import train_args

    argv = train_args(
        Path(bin_dir), Path("ck"), model=ModelConfig(arch="transformer_tiny"),
        train=TrainConfig(precision="bf16"), activation="swish", lr=1e-3, seed=1,
        device="cuda", gpus=1,
    )[1:]  # fmt: skip
    args = options.parse_args_and_arch(options.get_training_parser(), input_args=argv)
    cfg = convert_namespace_to_omegaconf(args)
    seen = {}
    # fairseq-train's own next step; `main` receives the config training will use.
    distributed_utils.call_main(cfg, lambda c: seen.setdefault("cfg", c))
    c = seen["cfg"]
    return {
        "bf16": c.common.bf16,
        "fp16": c.common.fp16,
        "tpu": c.common.tpu,
        "optimizer_tpu": c.optimizer.tpu,
        "distributed_tpu": c.distributed_training.tpu,
        # fairseq's Trainer: cuda = torch.cuda.is_available() and not cpu and not tpu
        "cuda_unless_cpu_or_tpu": not c.common.cpu and not c.common.tpu,
    }


@pytest.mark.slow
def test_bf16_config_trains_on_cuda_not_tpu(data):
    """fairseq 0.12: --bf16 implies --tpu; without torch_xla the trainer would crash."""
    got = isolated(_bf16_config, str(data.bin_dir))
    assert got["bf16"] and not got["fp16"]
    assert not got["tpu"] and not got["optimizer_tpu"] and not got["distributed_tpu"]
    assert got["cuda_unless_cpu_or_tpu"]


@pytest.mark.slow
def test_bf16_fairseq_train_runs_without_torch_xla(data, tmp_path):
    """The real fairseq-train with --bf16 (on the CPU here: no --cpu, no CUDA) trains."""
    cmd = [a for a in train_cmd(data, tmp_path, "swiglu", "--bf16", updates=2) if a != "--cpu"]
    result = run(cmd)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert "No module named 'torch_xla'" not in log and re.search(r"num_updates 2\b", log)
    cfg = _state(tmp_path / "checkpoint_last.pt")["cfg"]
    assert cfg["common"]["bf16"] and not cfg["common"]["tpu"]


def _check_swap_save_and_reload_everywhere(bin_dir: str, trained: str, out: str) -> list[str]:
    from fairseq import checkpoint_utils

    from workbench.translation.activation_swap import ffn_layers, save_checkpoint, swap_activation
    from workbench.translation.plugin import install

    install()  # what a user calls first
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([trained])
    model = models[0].eval()
    assert swap_activation(model, "swish") == 4
    for i, (_, layer) in enumerate(ffn_layers(model)):
        layer.activation_fn.beta.data.fill_(0.5 + 0.1 * i)  # distinct, recognisable values
    save_checkpoint(model, out, like=trained)
    assert _state(Path(out))["cfg"]["model"].activation_fn == "swish"
    reloaded = checkpoint_utils.load_model_ensemble_and_task([out])[0][0].eval()
    for (_, a), (_, b) in zip(ffn_layers(model), ffn_layers(reloaded), strict=True):
        assert torch.equal(a.activation_fn.beta, b.activation_fn.beta)
    task.load_dataset("test")
    batch = task.dataset("test").collater([task.dataset("test")[i] for i in range(3)])
    with torch.no_grad():
        assert torch.equal(model(**batch["net_input"])[0], reloaded(**batch["net_input"])[0])
    return [layer.activation_fn.beta.mean().item() for _, layer in ffn_layers(reloaded)]


def _hub_translations(ckpt: str, bin_dir: str, spm_model: str, sources: list[str]) -> dict:
    """The hub interface's translations, and whether its parameters equal the checkpoint's."""
    from fairseq.models.transformer import TransformerModel

    from workbench.translation.plugin import install

    install()
    path = Path(ckpt)
    hub = TransformerModel.from_pretrained(
        str(path.parent), checkpoint_file=path.name, data_name_or_path=bin_dir,
        bpe="sentencepiece", sentencepiece_model=spm_model,
    )  # fmt: skip
    saved = _state(path)["model"]
    params = hub.models[0].state_dict()
    return {
        "equal_params": set(saved) == set(params)
        and all(torch.equal(saved[k], params[k]) for k in saved),
        "fc1": [tuple(layer.fc1.weight.shape) for layer in hub.models[0].encoder.layers],
        "spec": hub.models[0].encoder.layers[0].activation_fn.spec,
        "translations": [hub.translate(s, beam=2, max_len_b=20) for s in sources],
    }


def _d_text(lines: list[str]) -> list[str]:
    return [line.split("\t", 2)[2] if line.count("\t") >= 2 else "" for line in lines]


@pytest.mark.slow
def test_swap_activation_save_and_reload_everywhere(data, trained, tmp_path):
    out = tmp_path / "swapped.pt"
    betas = isolated(
        _check_swap_save_and_reload_everywhere, str(data.bin_dir), str(trained), str(out)
    )
    assert [round(b, 4) for b in betas] == [0.5, 0.6, 0.7, 0.8]
    # fairseq-generate, fairseq-interactive and the hub reload it and agree line for line.
    generated = generate(data, out)
    sources = data.source("test").read_text(encoding="utf-8").splitlines()
    assert interactive(data, out, sources) == generated
    hub = isolated(_hub_translations, str(out), str(data.bin_dir), str(data.spm_model), sources[:5])
    assert hub["equal_params"] and hub["spec"] == "swish"
    assert hub["translations"] == _d_text(generated[:5])


@pytest.mark.slow
def test_fairseq_user_dir_command_prints_the_plugin(cli):
    result = cli("fairseq-user-dir")
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == PLUGIN.resolve()
    assert (PLUGIN / "__init__.py").exists()
    check = cli("fairseq-user-dir", "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "gated_ffn_width" in check.stdout and "bf16" in check.stdout


def test_the_plugins_parent_folder_shadows_no_module_name():
    """fairseq puts the --user-dir's parent on sys.path (issue 10.8): that parent must hold the
    plugin package and nothing importable besides, or names such as `train`, `config` or `task`
    inside fairseq processes would resolve to the workbench's modules."""
    from workbench.translation.plugin import plugin_dir

    parent = plugin_dir().parent
    importable = {
        p.name for p in parent.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()
    }
    assert importable == {"__init__.py", plugin_dir().name}
    probe = subprocess.run(
        [sys.executable, "-c", "import importlib.util as u; print(u.find_spec('train'))"],
        env={**os.environ, "PYTHONPATH": str(parent)}, capture_output=True, text=True,
    )  # fmt: skip
    assert probe.returncode == 0 and probe.stdout.strip() == "None"


def test_gpu_flags_fp16_bf16_and_several_nodes():
    from workbench.translation.config import DistributedConfig, ModelConfig, TrainConfig
    from workbench.translation.train import train_args

    def args(gpus: int = 1, **train_kw):
        cfg = TrainConfig(**train_kw)
        return train_args(
            Path("bin"), Path("ck"), model=ModelConfig(), train=cfg,
            activation="swish", lr=1e-3, seed=1, device="cuda", gpus=gpus,
        )  # fmt: skip

    auto = args()
    assert "--fp16" in auto and "--cpu" not in auto
    assert "--bf16" in args(precision="bf16") and "--fp16" not in args(precision="fp32")
    nodes = args(
        gpus=4, distributed=DistributedConfig(nodes=2, node_rank=1, init_method="tcp://h:9")
    )
    assert nodes[nodes.index("--distributed-world-size") + 1] == "8"
    assert nodes[nodes.index("--distributed-rank") + 1] == "4"


@pytest.mark.slow
@pytest.mark.gpu
def test_fp16_and_bf16_training_on_gpu(data, tmp_path):
    from workbench.translation.config import ModelConfig, TrainConfig
    from workbench.translation.train import train, train_args

    model = ModelConfig(arch="transformer_tiny")
    for precision in ("fp16", "bf16"):
        cfg = TrainConfig(
            max_update=4, warmup_updates=2, max_tokens=2000, log_interval=1, precision=precision
        )
        unit = tmp_path / precision
        result = train(
            train_args(data.bin_dir, unit / "ck", model=model, train=cfg,
                       activation=FORMULA, lr=1e-3, seed=1, device="cuda"),
            unit,
        )  # fmt: skip
        assert result.updates == 4 and f"--{precision}" in (unit / "train.cmd").read_text()
        assert len(generate(data, result.checkpoint)) == 21


@pytest.mark.slow
def test_fine_tune_a_swapped_checkpoint_with_fairseq_train(data, trained, tmp_path):
    from workbench.translation.activation_swap import swap_checkpoint

    swapped = tmp_path / "swapped.pt"
    isolated(swap_checkpoint, trained, swapped, "max(x, sigmoid(x))")
    cmd = train_cmd(data, tmp_path / "ft", "max(x, sigmoid(x))", updates=2)
    cmd[cmd.index("--lr") + 1] = "0.001"
    result = run(
        [
            *cmd,
            "--restore-file",
            str(swapped),
            "--reset-optimizer",
            "--reset-lr-scheduler",
            "--reset-dataloader",
            "--reset-meters",
        ]  # fmt: skip
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Loaded checkpoint {swapped}" in result.stdout + result.stderr
    tuned = _state(tmp_path / "ft" / "checkpoint_last.pt")
    assert tuned["cfg"]["model"].activation_fn == "max(x, sigmoid(x))"
    assert not any("activation_fn" in k for k in tuned["model"])  # parameter-free formula


def test_checkpoint_average_is_the_parameter_mean(tmp_path):
    from workbench.translation.checkpoints import average

    for i, value in enumerate((1.0, 2.0, 6.0)):
        state = {"model": {"w": torch.full((2,), value), "n": torch.tensor(i)}, "extra": i}
        torch.save(state, tmp_path / f"c{i}.pt")
    out = average([tmp_path / f"c{i}.pt" for i in range(3)], tmp_path / "avg.pt")
    avg = _state(out)
    assert torch.allclose(avg["model"]["w"], torch.full((2,), 3.0))
    assert avg["extra"] == 2 and avg["last_optimizer_state"] is None


# --- kernels and warnings inside fairseq processes --------------------------------------------


@pytest.mark.slow
def test_the_kernel_backend_that_ran_inside_fairseq_is_recorded(trained, gated):
    formula = kernel_report.collect(trained.parent / "kernels")
    assert formula is not None and formula["processes"] >= 1
    assert sum(formula["calls"].values()) > 0 and formula["backend"] != "native"
    assert not formula["formulas_failed"] and formula["fallbacks"] == 0
    assert kernel_report.collect(gated[0].parent / "kernels")["calls"] != formula["calls"]


@pytest.mark.slow
def test_native_activations_record_the_native_backend(data, tmp_path):
    _train(data, tmp_path, "relu", "--no-save", "--max-update", "1")
    stats = kernel_report.collect(tmp_path / "kernels")
    assert stats is not None and stats["backend"] == "native"


@pytest.mark.slow
def test_warnings_inside_fairseq_processes_reach_the_log(data, tmp_path):
    """Only fairseq's known noise is filtered: a kernel's RuntimeWarning still shows."""
    from workbench.translation.checkpoints import subprocess_env

    code = (
        f"import sys; sys.path.insert(0, {str(PLUGIN.parent)!r}); import workbench_activations\n"
        "import warnings\n"
        "warnings.warn('torch.compile failed for activation x', RuntimeWarning)\n"
        "warnings.warn('hydra.experimental.compose() is no longer experimental', UserWarning)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(1)
    )
    assert result.returncode == 0, result.stderr
    assert "RuntimeWarning: torch.compile failed for activation x" in result.stderr
    assert "hydra.experimental" not in result.stderr
    # And a real training log has none of the known noise.
    log = _train(data, tmp_path, "relu", "--no-save", "--max-update", "1").stderr
    assert "no longer experimental" not in log and "torch.cuda.amp" not in log


# --- gated FFNs (issue 13) ------------------------------------------------------------------


@pytest.mark.slow
def test_a_gated_transformer_trains_with_fused_fc1_and_the_spec_in_its_checkpoint(gated):
    checkpoint, log = gated
    state = _state(checkpoint)
    assert state["cfg"]["model"].activation_fn == GATED
    h = round(2 * FFN / 3)
    for side in ("encoder", "decoder"):
        for i in (0, 1):
            prefix = f"{side}.layers.{i}"
            assert state["model"][f"{prefix}.fc1.weight"].shape == (2 * h, 64)  # [gate | value]
            assert state["model"][f"{prefix}.fc2.weight"].shape == (64, h)
            assert state["model"][f"{prefix}.activation_fn.beta"].shape == (h,)
    assert "GatedActivation" in log


def _parameter_counts(bin_dir: str) -> dict[str, int]:
    """Parameters of the tiny test model per activation and gated width, built by fairseq."""
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    counts = {}
    for name, extra in {
        "relu": ["--activation-fn", "relu"],
        "swiglu": ["--activation-fn", "swiglu"],
        "swiglu full": ["--activation-fn", "swiglu", "--gated-ffn-width", "full"],
        GATED: ["--activation-fn", GATED],
    }.items():
        argv = [
            bin_dir, "--user-dir", str(PLUGIN), "--task", "translation", "--arch",
            "transformer_tiny", "--encoder-ffn-embed-dim", str(FFN),
            "--decoder-ffn-embed-dim", str(FFN), "--share-all-embeddings", *extra,
        ]  # fmt: skip
        args = options.parse_args_and_arch(options.get_training_parser(), input_args=argv)
        cfg = convert_namespace_to_omegaconf(args)
        task = tasks.setup_task(cfg.task)
        counts[name] = sum(p.numel() for p in task.build_model(cfg.model).parameters())
    return counts


@pytest.mark.slow
def test_gated_parameter_count_matches_the_ungated_model(data, gated):
    counts = isolated(_parameter_counts, str(data.bin_dir))
    assert abs(counts["swiglu"] - counts["relu"]) / counts["relu"] < 0.01
    assert counts["swiglu full"] > 1.05 * counts["relu"]  # the width key really widens
    # fairseq-train's own count of the trained gated model is the one built here.
    logged = re.search(r"num\. shared model params: ([\d,]+)", gated[1]).group(1)
    assert int(logged.replace(",", "")) == counts[GATED]


def _glu_relu_against_hand_written() -> float:
    """max |layer FFN - relu(xW + b) * (xV + c) W2 + b2| on fixed weights."""
    from fairseq.models.transformer import TransformerConfig
    from fairseq.modules.transformer_layer import TransformerEncoderLayerBase

    from workbench.translation.plugin import install

    install()
    cfg = TransformerConfig()
    cfg.activation_fn = "glu(relu)"
    cfg.encoder.embed_dim, cfg.encoder.ffn_embed_dim = 8, 9  # h = 6
    layer = TransformerEncoderLayerBase(cfg).eval()
    g = torch.Generator().manual_seed(0)
    W, V = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    b, c = torch.randn(6, generator=g), torch.randn(6, generator=g)
    W2, b2 = torch.randn(8, 6, generator=g), torch.randn(8, generator=g)
    with torch.no_grad():
        layer.fc1.weight.copy_(torch.cat([W, V]))
        layer.fc1.bias.copy_(torch.cat([b, c]))
        layer.fc2.weight.copy_(W2)
        layer.fc2.bias.copy_(b2)
        x = torch.randn(5, 3, 8, generator=g)  # (time, batch, channels) as fairseq's layers
        ffn = layer.fc2(layer.activation_fn(layer.fc1(x)))
        hand = (torch.relu(x @ W.T + b) * (x @ V.T + c)) @ W2.T + b2
    return (ffn - hand).abs().max().item()


@pytest.mark.slow
def test_glu_relu_equals_the_hand_written_gated_ffn():
    assert isolated(_glu_relu_against_hand_written) < 1e-5


def _swaps(checkpoint: str, ungated: str) -> dict[str, str]:
    """What swap_activation does to gated and ungated models ('ok' or its message)."""
    from fairseq import checkpoint_utils

    from workbench.translation.activation_swap import ffn_layers, swap_activation
    from workbench.translation.plugin import install

    install()
    out = {}
    for name, path, spec in (
        ("gated->ungated", checkpoint, "relu"),
        ("ungated->gated", ungated, "swiglu"),
        ("gated->gated", checkpoint, "geglu"),
    ):
        model = checkpoint_utils.load_model_ensemble_and_task([path])[0][0]
        before = {k: v.clone() for k, v in model.state_dict().items() if "fc" in k}
        try:
            swap_activation(model, spec)
            out[name] = "ok"
            layer = ffn_layers(model)[0][1]
            assert layer.activation_fn.spec == "geglu" and layer.activation_fn.channels == 32
            after = model.state_dict()
            assert all(torch.equal(v, after[k]) for k, v in before.items())  # weights kept
        except ValueError as exc:
            out[name] = str(exc)
            assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    return out


@pytest.mark.slow
def test_gated_and_ungated_swaps_are_refused_gate_swaps_allowed(gated, trained):
    out = isolated(_swaps, str(gated[0]), str(trained))
    assert out["gated->gated"] == "ok"
    for name in ("gated->ungated", "ungated->gated"):
        assert "gated" in out[name] and "shape" in out[name], out[name]


@pytest.mark.slow
def test_a_gated_checkpoint_reloads_bit_identically_in_every_tool(data, gated):
    checkpoint = gated[0]
    generated = generate(data, checkpoint)
    assert len(generated) == 21
    sources = data.source("test").read_text(encoding="utf-8").splitlines()
    assert interactive(data, checkpoint, sources) == generated  # ids, scores and text
    hub = isolated(
        _hub_translations, str(checkpoint), str(data.bin_dir), str(data.spm_model), sources[:5]
    )
    assert hub["equal_params"] and hub["spec"] == GATED
    assert hub["fc1"] == [(64, 64), (64, 64)]  # 2h = 64 rows: the gated shape came back
    assert hub["translations"] == _d_text(generated[:5])
