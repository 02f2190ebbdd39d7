"""The fairseq plugin with fairseq's own tools: real fairseq-train / fairseq-generate commands,
checkpoint reload (CLI, in-process, hub interface) and activation swapping.

The subprocesses run *without* TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD: the plugin itself must make
fairseq's checkpoints loadable under torch's weights-only default.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from workbench.translation import prepare
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


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    """A fairseq command on one thread, without the weights-only escape hatch."""
    env = {k: v for k, v in os.environ.items() if k != "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, **kw)


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


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    save = tmp_path_factory.mktemp("ck")
    cmd = [
        str(BIN / "fairseq-train"), str(data.bin_dir), "--cpu", "--user-dir", str(PLUGIN),
        "--arch", "transformer_tiny", "--encoder-ffn-embed-dim", "48",
        "--decoder-ffn-embed-dim", "48", "--share-all-embeddings",
        "--activation-fn", FORMULA, "--optimizer", "adam", "--lr", "0.01",
        "--max-tokens", "2000", "--max-update", "6", "--save-dir", str(save),
        "--no-epoch-checkpoints", "--num-workers", "0", "--log-format", "simple",
    ]  # fmt: skip
    result = run(cmd)
    assert result.returncode == 0, result.stderr[-3000:]
    return save / "checkpoint_last.pt"


def _state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def generate(data, checkpoint: Path, subset: str = "test") -> list[str]:
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
            "64",
            "--required-batch-size-multiple",
            "1",
            "--post-process",
            "sentencepiece",
            "--num-workers",
            "0",
        ]  # fmt: skip
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [line for line in result.stdout.splitlines() if line.startswith("D-")]


def spm_pieces(data, text: str) -> list[str]:
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=str(data.spm_model)).encode(text, out_type=str)


def test_fairseq_train_and_generate_with_a_formula(data, trained):
    state = _state(trained)
    # The spec string is stored, canonicalised, never an object.
    spec = state["cfg"]["model"].activation_fn
    assert type(spec) is str and spec == "x * sigmoid(beta * x)"
    betas = {k: v for k, v in state["model"].items() if k.endswith("activation_fn.beta")}
    assert len(betas) == 4  # 2 encoder + 2 decoder layers of transformer_tiny
    assert all(v.shape == (48,) for v in betas.values())  # per channel of the FFN hidden layer
    assert any(not torch.allclose(v, torch.ones_like(v)) for v in betas.values())  # trained
    assert len(generate(data, trained)) == 21


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


def test_plugin_install_is_idempotent_and_handles_swish():
    from fairseq import utils
    from fairseq.modules import transformer_layer

    from workbench.translation import plugin

    plugin.install()
    patched = utils.get_activation_fn
    init = transformer_layer.TransformerEncoderLayerBase.__init__
    utils.import_user_module(argparse.Namespace(user_dir=str(PLUGIN)))  # as --user-dir does
    plugin.install()
    assert utils.get_activation_fn is patched
    assert transformer_layer.TransformerEncoderLayerBase.__init__ is init
    x = torch.linspace(-3, 3, 7)
    swish = utils.get_activation_fn("swish")  # fairseq's own returns the class nn.SiLU
    assert torch.allclose(swish(x), x * torch.sigmoid(x))  # β starts at 1
    assert utils.get_activation_fn("relu") is torch.nn.functional.relu  # native names unchanged
    assert plugin.activation_arg("max(x,sigmoid(x))") == "max(x, sigmoid(x))"
    with pytest.raises(argparse.ArgumentTypeError):
        plugin.activation_arg("nonsense(x")


def test_swap_activation_save_and_reload_everywhere(data, trained, tmp_path):
    from fairseq import checkpoint_utils
    from fairseq.models.transformer import TransformerModel

    from workbench.translation.activation_swap import ffn_layers, save_checkpoint, swap_activation
    from workbench.translation.plugin import install

    install()  # what a user calls first
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([str(trained)])
    model = models[0].eval()
    assert swap_activation(model, "swish") == 4
    for i, (_, layer) in enumerate(ffn_layers(model)):
        layer.activation_fn.beta.data.fill_(0.5 + 0.1 * i)  # distinct, recognisable values
    out = save_checkpoint(model, tmp_path / "swapped.pt", like=trained)
    assert _state(out)["cfg"]["model"].activation_fn == "swish"

    reloaded = checkpoint_utils.load_model_ensemble_and_task([str(out)])[0][0].eval()
    for (_, a), (_, b) in zip(ffn_layers(model), ffn_layers(reloaded), strict=True):
        assert torch.equal(a.activation_fn.beta, b.activation_fn.beta)
    task.load_dataset("test")
    batch = task.dataset("test").collater([task.dataset("test")[i] for i in range(3)])
    with torch.no_grad():
        assert torch.allclose(model(**batch["net_input"])[0], reloaded(**batch["net_input"])[0])

    assert len(generate(data, out)) == 21  # fairseq-generate reloads the swapped checkpoint
    pieces = " ".join(spm_pieces(data, "The dog sees a cat."))
    interactive = run(
        [
            str(BIN / "fairseq-interactive"),
            str(data.bin_dir),
            "--cpu",
            "--user-dir",
            str(PLUGIN),
            "--path",
            str(out),
            "--beam",
            "2",
            "--source-lang",
            "en",
            "--target-lang",
            "de",
        ],  # fmt: skip
        input=pieces + "\n",
    )
    assert interactive.returncode == 0, interactive.stderr[-3000:]
    assert any(line.startswith("H-0\t") for line in interactive.stdout.splitlines())
    hub = TransformerModel.from_pretrained(
        str(out.parent), checkpoint_file=out.name, data_name_or_path=str(data.bin_dir),
        bpe="sentencepiece", sentencepiece_model=str(data.spm_model),
    )  # fmt: skip
    betas = [layer.activation_fn.beta for _, layer in ffn_layers(hub.models[0])]
    assert [round(float(b.detach().mean()), 4) for b in betas] == [0.5, 0.6, 0.7, 0.8]
    assert isinstance(hub.translate("The dog sees a cat."), str)


def test_fairseq_user_dir_command_prints_the_plugin(cli):
    result = cli("fairseq-user-dir")
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == PLUGIN.resolve()
    assert (PLUGIN / "__init__.py").exists()


def test_gpu_flags_fp16_bf16_and_several_nodes():
    from workbench.translation.config import ModelConfig, TrainConfig
    from workbench.translation.train import train_args

    def args(**train_kw):
        cfg = TrainConfig(**train_kw)
        return train_args(
            Path("bin"), Path("ck"), model=ModelConfig(), train=cfg,
            activation="swish", lr=1e-3, seed=1, device="cuda",
        )  # fmt: skip

    auto = args()
    assert "--fp16" in auto and "--cpu" not in auto
    assert "--bf16" in args(precision="bf16") and "--fp16" not in args(precision="fp32")
    from workbench.translation.config import DistributedConfig

    nodes = args(distributed=DistributedConfig(nodes=2, node_rank=1, init_method="tcp://h:9"))
    world = int(nodes[nodes.index("--distributed-world-size") + 1])
    rank = int(nodes[nodes.index("--distributed-rank") + 1])
    assert world % 2 == 0 and rank == world // 2


@pytest.mark.gpu
def test_fp16_training_on_gpu(data, tmp_path):
    from workbench.translation.config import ModelConfig, TrainConfig
    from workbench.translation.train import train, train_args

    model = ModelConfig(arch="transformer_tiny")
    cfg = TrainConfig(max_update=4, warmup_updates=2, max_tokens=2000, log_interval=1)
    result = train(
        train_args(data.bin_dir, tmp_path / "ck", model=model, train=cfg,
                   activation=FORMULA, lr=1e-3, seed=1, device="cuda"),
        tmp_path,
    )  # fmt: skip
    assert result.updates == 4 and "fp16" in (tmp_path / "train.cmd").read_text()
    assert len(generate(data, result.checkpoint)) == 21


def test_fine_tune_a_swapped_checkpoint_with_fairseq_train(data, trained, tmp_path):
    from workbench.translation.activation_swap import swap_checkpoint

    swapped = swap_checkpoint(trained, tmp_path / "swapped.pt", "max(x, sigmoid(x))")
    result = run(
        [
            str(BIN / "fairseq-train"),
            str(data.bin_dir),
            "--cpu",
            "--user-dir",
            str(PLUGIN),
            "--arch",
            "transformer_tiny",
            "--encoder-ffn-embed-dim",
            "48",
            "--decoder-ffn-embed-dim",
            "48",
            "--share-all-embeddings",
            "--activation-fn",
            "max(x, sigmoid(x))",
            "--optimizer",
            "adam",
            "--lr",
            "0.001",
            "--max-tokens",
            "2000",
            "--max-update",
            "2",
            "--save-dir",
            str(tmp_path / "ft"),
            "--restore-file",
            str(swapped),
            "--reset-optimizer",
            "--reset-lr-scheduler",
            "--reset-dataloader",
            "--reset-meters",
            "--no-epoch-checkpoints",
            "--num-workers",
            "0",
            "--log-format",
            "simple",
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
