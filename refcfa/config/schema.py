"""Typed configuration sections.

Each section is a dataclass; `refcfa.config.loader.validate` turns a merged YAML mapping into a
`Config`, rejecting unknown keys and wrong types with a message that names the key and the file.
Defaults here are the CPU-friendly values measured in DESIGN.md section 11 and 8.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as _field
from typing import Literal

CONFIG_VERSION = 1


@dataclass
class DomainConfig:
    """One side of a cross-domain task: where its images are and what its runs are called."""

    root: str = "data/synthetic"
    format: Literal["auto", "mvtec", "visa", "dagm", "folder"] = "auto"
    category: str = "source_texture"
    name: str = ""  # experiment name: output/<name>/checkpoint_epoch_X.pth; default derived


@dataclass
class DataConfig:
    image_size: int = 64
    channels: int | None = None  # None: follow the data (grayscale stays 1-channel)
    transductive: bool = True  # T1 and CFA see the target test images (without labels)
    # T1 alone may differ: None follows `transductive`; false trains T1 on the target train split
    # only (measured: a T1 that saw the anomalous test images learns to reproduce the defects)
    t1_transductive: bool | None = None
    augment: dict = _field(default_factory=lambda: {"hflip": True, "vflip": True, "rot90": False})
    num_workers: int = 0


@dataclass
class ModelConfig:
    """diffusers `UNet2DModel` settings (built from config, never downloaded)."""

    block_out_channels: list = _field(default_factory=lambda: [32, 64, 64])
    layers_per_block: int = 1
    attention_levels: list = _field(default_factory=lambda: [False, False, True])
    attention_head_dim: int = 8
    norm_num_groups: int = 8
    dropout: float = 0.0
    in_channels: int | None = None  # None: follow the data


@dataclass
class DiffusionConfig:
    num_train_timesteps: int = 1000
    beta_schedule: Literal["linear", "squaredcos_cap_v2"] = "linear"
    beta_start: float = 1e-4
    beta_end: float = 0.02


@dataclass
class TrainConfig:
    max_steps: int = 1000
    batch_size: int = 16
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 50
    scheduler: Literal["cosine", "cosine_restarts", "constant"] = "cosine"
    restart_period: int = 500  # for cosine_restarts (the seed's CosineAnnealingWarmRestarts)
    grad_clip: float = 1.0
    ema_decay: float = 0.999  # with warm-up min(decay, (1+k)/(10+k))
    amp: bool = True  # mixed precision on CUDA only
    checkpoint_every: int = 200
    log_every: int = 10
    val_fraction: float = 0.1
    early_stop_patience: int = 0  # evaluations without improvement; 0 = off
    eval_every: int = 0  # steps between validation losses; 0 = only at the end
    init_target_from_source: bool = False
    target_max_steps: int | None = None  # T1's step count (default: max_steps); useful with a warm start
    max_time_s: float = 0.0  # 0 = no time budget
    crop_size: int | None = None  # train on random crops of this size (textures)


@dataclass
class FieldConfig:
    t0: int = 100
    K: int = 10
    patch: int = 3
    delta: float = 1e-6
    guidance_w: float = 0.0  # DDAD-style input conditioning; 0 = the seed's unconditional steps
    batch_size: int = 16


@dataclass
class CacheConfig:
    dir: str = ""  # default: <output_dir>/cache
    budget_gb: float = 20.0


@dataclass
class TransformerConfig:
    d_model: int = 32
    layers: int = 2
    heads: int = 4
    dropout: float = 0.0


@dataclass
class DetectorConfig:
    epochs: int = 30
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    hidden: int = 32
    h_proj: int = 4
    pos_weight: float = 0.0  # 0 = from the class balance
    dice_weight: float = 1.0
    synthetic_anomalies: bool = True
    n_synthetic: int = 60
    use_labelled: bool = True
    val_fraction: float = 0.2
    crop_size: int | None = None  # train the detector on random crops (CPU speed); maps are full-size
    norm: Literal["channel", "group", "none"] = "channel"  # the head's normalisation (refcfa.field.head)
    crop_origins: Literal["clamped", "uniform"] = "clamped"  # crops reach the border (field.detector)


@dataclass
class CFAConfig:
    temporal: bool = True
    coral: bool = True
    subspace: bool = True
    coral_lambda: float = 1e-3
    subspace_k: int = 8
    max_pixels: int = 20000


@dataclass
class EvalConfig:
    sigma: float | None = None  # None: 4 px at 256, scaled with the image size
    oracle: bool = False
    write_maps: bool = True


@dataclass
class Config:
    version: int = CONFIG_VERSION
    name: str = "refcfa"
    stage: Literal["source", "target"] = "source"
    output_dir: str = "output"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    source: DomainConfig = _field(default_factory=DomainConfig)
    target: DomainConfig = _field(default_factory=lambda: DomainConfig(category="target_texture"))
    data: DataConfig = _field(default_factory=DataConfig)
    model: ModelConfig = _field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = _field(default_factory=DiffusionConfig)
    train: TrainConfig = _field(default_factory=TrainConfig)
    field: FieldConfig = _field(default_factory=FieldConfig)
    cache: CacheConfig = _field(default_factory=CacheConfig)
    transformer: TransformerConfig = _field(default_factory=TransformerConfig)
    detector: DetectorConfig = _field(default_factory=DetectorConfig)
    cfa: CFAConfig = _field(default_factory=CFAConfig)
    eval: EvalConfig = _field(default_factory=EvalConfig)
    source_file: str = ""  # the YAML file it was loaded from (not part of digests)

    def domain(self, which: Literal["source", "target"] | None = None) -> DomainConfig:
        """The domain section for `which` (default: this config's `stage`)."""
        return self.target if (which or self.stage) == "target" else self.source

    def experiment_name(self, which: Literal["source", "target"] | None = None) -> str:
        """`output/<ExpName>/` folder of a domain's score network."""
        which = which or self.stage
        dom = self.domain(which)
        if dom.name:
            return dom.name
        return f"{self.name}_{which}_{dom.category}"

    def experiment_dir(self, which: Literal["source", "target"] | None = None):
        from pathlib import Path

        return Path(self.output_dir) / self.experiment_name(which)

    def cache_dir(self):
        from pathlib import Path

        return Path(self.cache.dir) if self.cache.dir else Path(self.output_dir) / "cache"

    def t1_transductive(self) -> bool:
        """Whether T1 trains on the target test images too (without labels)."""
        t1 = self.data.t1_transductive
        return self.data.transductive if t1 is None else bool(t1)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        out = asdict(self)
        out.pop("source_file", None)
        return out
