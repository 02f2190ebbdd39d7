"""The translation task's recipe sections, as dataclasses (validated by workbench.schema).

Top-level keys of a translation recipe besides the shared ones: `data`, `model`, `train`,
`eval`. Every fairseq setting the paper's experiment varies has a typed key; `model.extra_args`
passes any other fairseq-train flag through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


def _positive(value: int | float) -> None:
    if value <= 0:
        raise ValueError(f"must be positive, got {value}")


def _non_negative(value: int | float) -> None:
    if value < 0:
        raise ValueError(f"must be >= 0, got {value}")


def _lrs(values: list[float]) -> None:
    if not values:
        raise ValueError("give at least one learning rate")
    for v in values:
        _positive(v)


@dataclass
class SetConfig:
    """A dev or test set: local files, a sacrebleu test set, or synthetic pairs."""

    name: str = field(metadata={"help": "split name in records, e.g. newstest2014"})
    local: str | None = field(
        default=None, metadata={"help": "file prefix: <local>.<lang> or <local>.<lang>.gz"}
    )
    sacrebleu: str | None = field(
        default=None, metadata={"help": "sacrebleu test set (wmt14/full ...), used when online"}
    )
    synthetic: int = field(
        default=0, metadata={"check": _non_negative, "help": "pairs from the embedded corpus"}
    )
    max_pairs: int = field(
        default=0, metadata={"check": _non_negative, "help": "0 = all; else the first N"}
    )


@dataclass
class TrainDataConfig:
    """Training text: any mix of local corpora, WMT14 En–De, synthetic pairs."""

    local: list[str] = field(default_factory=list, metadata={"help": "file prefixes"})
    wmt14: bool = field(default=False, metadata={"help": "download the WMT14 En-De mix"})
    download_dir: str = ".cache/downloads/wmt14"
    checksums: dict[str, str] = field(
        default_factory=dict, metadata={"help": "archive name -> expected sha256"}
    )
    synthetic: int = field(
        default=0, metadata={"check": _non_negative, "help": "pairs from the embedded corpus"}
    )
    max_pairs: int = field(
        default=0, metadata={"check": _non_negative, "help": "0 = all; else the first N"}
    )
    max_words: int = field(default=250, metadata={"check": _positive})
    max_ratio: float = field(
        default=0.0, metadata={"check": _non_negative, "help": "word-count ratio filter; 0 = off"}
    )


@dataclass
class DataConfig:
    source_lang: str = "en"
    target_lang: str = "de"
    train: TrainDataConfig = field(default_factory=TrainDataConfig)
    dev: SetConfig = field(default_factory=lambda: SetConfig(name="valid", synthetic=500))
    tests: list[SetConfig] = field(default_factory=list)
    vocab_size: int = field(default=8000, metadata={"check": _positive})
    spm_model_type: Literal["unigram", "bpe"] = "unigram"
    spm_max_sentences: int = field(
        default=2_000_000, metadata={"help": "sentences sampled to train sentencepiece"}
    )
    cache_dir: str = field(
        default=".cache/prepared", metadata={"help": "content-keyed cache of prepared data"}
    )
    workers: int = field(default=2, metadata={"check": _positive})


@dataclass
class ModelConfig:
    """A fairseq Transformer: an architecture preset plus overrides (None = the preset's)."""

    arch: str = "transformer_wmt_en_de"
    encoder_layers: int | None = None
    decoder_layers: int | None = None
    embed_dim: int | None = None
    ffn_dim: int | None = None
    heads: int | None = None
    dropout: float | None = None
    attention_dropout: float | None = None
    activation_dropout: float | None = None
    normalize_before: bool | None = None
    share_all_embeddings: bool = True
    gated_width: Literal["matched", "full"] = field(
        default="matched",
        metadata={
            "help": "gated FFN (swiglu, glu(...)) hidden width: matched = 2/3 of ffn_dim "
            "(parameters as ungated), full = ffn_dim (fairseq's --gated-ffn-width)"
        },
    )
    extra_args: list[str] = field(
        default_factory=list, metadata={"help": "further fairseq-train flags, verbatim"}
    )


@dataclass
class DistributedConfig:
    """Several nodes (each uses all its visible GPUs); one node needs nothing here."""

    nodes: int = field(default=1, metadata={"check": _positive})
    node_rank: int = 0
    init_method: str | None = field(default=None, metadata={"help": "tcp://HOST:PORT"})


@dataclass
class TrainConfig:
    lr: list[float] = field(default_factory=lambda: [5e-4], metadata={"check": _lrs})
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    warmup_updates: int = 4000
    warmup_init_lr: float = 1e-7
    weight_decay: float = 0.0
    clip_norm: float = 0.0
    label_smoothing: float = 0.1
    max_tokens: int = field(
        default=4096, metadata={"check": _positive, "help": "fairseq's --max-tokens, per GPU"}
    )
    update_freq: int = field(
        default=1,
        metadata={"check": _positive, "help": "batches per update (see tokens_per_update)"},
    )
    tokens_per_update: int = field(
        default=0,
        metadata={
            "check": _non_negative,
            "help": "token budget of one update over all GPUs; sets update_freq from the GPU "
            "count: ceil(tokens_per_update / (max_tokens * GPUs)). 0 = use update_freq",
        },
    )
    max_update: int = field(default=300_000, metadata={"check": _positive})
    max_epoch: int = 0
    stop_time_minutes: float = field(
        default=0.0, metadata={"check": _non_negative, "help": "stop training after N minutes"}
    )
    precision: Literal["auto", "fp32", "fp16", "bf16"] = field(
        default="auto", metadata={"help": "auto: fp16 on CUDA, fp32 on CPU"}
    )
    save_interval_updates: int = field(
        default=0, metadata={"help": "also save every N updates (for averaging)"}
    )
    average_last: int = field(
        default=0, metadata={"help": "average the last N update checkpoints before evaluating"}
    )
    validate: bool = field(default=True, metadata={"help": "validation loss after each epoch"})
    threads: int = field(default=0, metadata={"help": "CPU threads (0 = torch's default)"})
    log_interval: int = 100
    distributed: DistributedConfig = field(default_factory=DistributedConfig)


@dataclass
class EvalConfig:
    beam: int = field(default=5, metadata={"check": _positive})
    lenpen: float = 1.0
    batch_size: int = field(default=128, metadata={"check": _positive})
    max_len_a: float = 1.2
    max_len_b: int = 10
    tokenize: str = field(default="13a", metadata={"help": "sacrebleu tokenizer"})


@dataclass
class TranslationConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
