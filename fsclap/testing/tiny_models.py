"""Random-weight models written in their real on-disk layouts."""

from __future__ import annotations

from pathlib import Path

import torch

from model.backbones.laion_clap import CLAP_FEATURE_EXTRACTOR
from pipeline.emotion import DEFAULT_BPE, all_tags

HTDEMUCS_SOURCES = ["drums", "bass", "other", "vocals"]


def write_htdemucs_repo(
    root: str | Path,
    name: str = "htdemucs",
    channels: int = 8,
    depth: int = 4,
    t_layers: int = 1,
    seed: int = 0,
    segment: float = 4.0,
    **kwargs,
) -> Path:
    """A Demucs local model repo (``<sig>-<checksum>.th`` + ``<name>.yaml``) holding a random HTDemucs.

    ``demucs.pretrained.get_model(name, repo=root)`` loads it like the released ``htdemucs``.
    Defaults give a 0.36M-parameter model; ``channels=48, t_layers=5`` is the released size.
    Keep ``depth=4``: shallower models leave a very long sequence for the cross-domain
    transformer at the bottleneck, which is far slower than the full model.
    """
    import yaml
    from demucs.htdemucs import HTDemucs
    from demucs.states import save_with_checksum, serialize_model
    from omegaconf import OmegaConf

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = HTDemucs(
        sources=HTDEMUCS_SOURCES,
        channels=channels,
        depth=depth,
        t_layers=t_layers,
        segment=segment,
        **kwargs,
    )
    package = serialize_model(model, OmegaConf.create({}), half=False)
    sig = f"tiny{seed:04d}"
    save_with_checksum(package, root / f"{sig}.th")
    (root / f"{name}.yaml").write_text(yaml.safe_dump({"models": [sig], "segment": segment}))
    return root


# --- LAION-CLAP (transformers ClapModel) ------------------------------------------------------

TINY_CAPTIONS = [
    "a young woman speaking fast with high pitch and angry emotion",
    "an old man speaking slowly with low pitch, sad and quiet",
    "a male voice with normal pitch and normal speed, neutral energy",
    "a female speaker whispering softly, fearful and surprised",
    "a happy girl talking loudly with a high voice",
]


def write_tiny_roberta_tokenizer(folder: str | Path, vocab_size: int = 320) -> Path:
    """A byte-level BPE tokenizer trained on a few captions, saved as a RoBERTa tokenizer
    (``vocab.json`` + ``merges.txt`` + ``tokenizer.json``): the same files roberta-base ships."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        TINY_CAPTIONS * 4,
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
    )
    bpe.save_model(str(folder))
    tok = RobertaTokenizerFast(
        vocab_file=str(folder / "vocab.json"), merges_file=str(folder / "merges.txt")
    )
    tok.save_pretrained(str(folder))
    return folder


def tiny_clap_config(vocab_size: int = 320):
    """A ~0.2M-parameter ClapConfig with the real HTSAT input layout (64 mel bins, 256 x 256 spectrogram image)."""
    from transformers import ClapConfig

    return ClapConfig(
        text_config=dict(
            vocab_size=vocab_size,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=80,
            layer_norm_eps=1e-5,
        ),
        audio_config=dict(
            patch_embeds_hidden_size=8,
            depths=[1, 1, 1, 1],
            num_attention_heads=[1, 1, 2, 2],
            hidden_size=64,
        ),
        projection_dim=16,
    )


def write_tiny_clap_folder(root: str | Path, seed: int = 0) -> Path:
    """A transformers-format LAION-CLAP folder (config, safetensors weights, tokenizer, preprocessor config)."""
    from transformers import ClapFeatureExtractor, ClapModel

    root = Path(root)
    tok_dir = write_tiny_roberta_tokenizer(root)
    torch.manual_seed(seed)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    model = ClapModel(tiny_clap_config(len(tok)))
    model.save_pretrained(str(root))
    ClapFeatureExtractor(**CLAP_FEATURE_EXTRACTOR).save_pretrained(str(root))
    return root


def clap_state_dict_to_original(hf_state: dict) -> dict:
    """Inverse of the transformers conversion: ClapModel names -> the names inside LAION's
    ``630k-audioset-best.pt`` (``module.`` prefix, fused ``attn.qkv``, ``bn0``, ``norm1``, nn.Sequential
    projections), plus the original-only tensors (in-model STFT/mel, AudioSet head, transform MLPs)."""
    out = {}
    enc = "audio_model.audio_encoder."
    for key, value in hf_state.items():
        if (
            key.endswith(("position_ids", "token_type_ids"))
            and "embeddings." in key
            and value.dtype == torch.long
        ):
            continue  # buffers the original does not store
        new = key
        if key.startswith("text_model."):
            new = "text_branch." + key[len("text_model.") :]
        elif key.startswith(enc):
            new = "audio_branch." + key[len(enc) :]
            new = (
                new.replace("batch_norm", "bn0")
                .replace("layernorm_before", "norm1")
                .replace("layernorm_after", "norm2")
            )
            new = new.replace("attention.self.", "attn.").replace(
                "attention.output.dense", "attn.proj"
            )
            new = new.replace("intermediate.dense", "mlp.fc1").replace(".output.dense", ".mlp.fc2")
            if any(
                new.endswith(f"attn.{p}.{w}") for p in ("key", "value") for w in ("weight", "bias")
            ):
                continue  # folded into qkv below
            if new.endswith(("attn.query.weight", "attn.query.bias")):
                kind = new.rsplit(".", 1)[1]
                base = key.rsplit(".query.", 1)[0]
                value = torch.cat(
                    [
                        hf_state[f"{base}.query.{kind}"],
                        hf_state[f"{base}.key.{kind}"],
                        hf_state[f"{base}.value.{kind}"],
                    ],
                    dim=0,
                )
                new = new.replace("attn.query.", "attn.qkv.")
        elif key.startswith(("text_projection.", "audio_projection.")):
            new = key.replace(".linear1.", ".0.").replace(".linear2.", ".2.")
        out["module." + new] = value.clone()
    hidden = hf_state["audio_projection.linear1.weight"].shape[1]
    out["module.audio_branch.spectrogram_extractor.stft.conv_real.weight"] = torch.randn(
        513, 1, 1024
    )
    out["module.audio_branch.logmel_extractor.melW"] = torch.randn(513, 64)
    out["module.audio_branch.tscam_conv.weight"] = torch.randn(527, hidden, 2, 3)
    out["module.audio_branch.head.weight"] = torch.randn(527, hidden)
    out["module.audio_branch.layers.0.blocks.0.attn_mask"] = torch.zeros(4, 64, 64)
    out["module.text_transform.sequential.0.weight"] = torch.randn(8, 8)
    out["module.audio_transform.sequential.3.weight"] = torch.randn(8, 8)
    return out


def write_tiny_clap_original(root: str | Path, seed: int = 0):
    """An original-format ``630k-audioset-best.pt`` (from a random tiny ClapModel) with a ``roberta-base``
    tokenizer folder beside it. Returns (checkpoint path, the ClapModel it was written from)."""
    import json

    from transformers import AutoTokenizer, ClapModel

    root = Path(root)
    tok_dir = write_tiny_roberta_tokenizer(root / "roberta-base")
    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    torch.manual_seed(seed)
    config = tiny_clap_config(len(tok))
    model = ClapModel(config).eval()
    state = clap_state_dict_to_original(model.state_dict())
    path = root / "630k-audioset-best.pt"
    torch.save({"epoch": 45, "state_dict": state}, path)
    # text heads cannot be read off weight shapes (roberta-base: hidden/64 = 12); the tiny one has 2
    (root / "clap_config.json").write_text(json.dumps({"text_config": {"num_attention_heads": 2}}))
    return path, model


# --- FunASR (paper profile: Paraformer-large + fsmn-vad + ct-punc + CAM++) -----------------------
#
# Each builder writes a local model dir in the layout of the released ModelScope model
# (configuration.json + config.yaml + weights + tokens.json / am.mvn / seg_dict), with the same
# config keys and model classes as the release and tiny dimensions. The weights are created by
# FunASR's own ``AutoModel.build_model`` from that config (so their keys and shapes are exactly
# what the loader expects) and saved with a fixed seed.

FUNASR_TINY_CHARS = list("的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年")


def _write_kaldi_cmvn(path: Path, dim: int, shift: float = -8.0, scale: float = 0.25) -> None:
    """am.mvn in the Kaldi nnet1 text format FunASR's ``load_cmvn`` parses (shift, then scale)."""
    shift = " ".join([f"{shift:.4f}"] * dim)
    scale = " ".join([f"{scale:.4f}"] * dim)
    path.write_text(
        "<Nnet>\n"
        f"<Splice> {dim} {dim}\n[ 0 ]\n"
        f"<AddShift> {dim} {dim}\n<LearnRateCoef> 0 [ {shift} ]\n"
        f"<Rescale> {dim} {dim}\n<LearnRateCoef> 0 [ {scale} ]\n"
        "</Nnet>\n"
    )


def write_funasr_dir(
    root: Path, config: dict, file_path_metas: dict, hub_name: str, seed: int, tune=None
) -> Path:
    """Write configuration.json + config.yaml, build the model through FunASR and save model.pt."""
    import json
    import logging

    import yaml
    from funasr.auto.auto_model import AutoModel

    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(
        yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    (root / "configuration.json").write_text(
        json.dumps(
            {
                "framework": "pytorch",
                "task": config.get("task", "auto-speech-recognition"),
                "model": {"type": "funasr"},
                "pipeline": {"type": "funasr-pipeline"},
                "model_name_in_hub": {"ms": hub_name, "hf": ""},
                "file_path_metas": file_path_metas,
                "note": "tiny random-weight model written by fsclap.testing.tiny_models",
            },
            ensure_ascii=False,
            indent=2,
        ),
        encoding="utf-8",
    )
    weights = root / file_path_metas["init_param"]
    torch.save({}, weights)  # placeholder so the loader runs; replaced below by the real weights
    previous = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)
    try:
        model, _ = AutoModel.build_model(
            model=str(root), device="cpu", disable_update=True, seed=seed, disable_log=True
        )
    finally:
        logging.getLogger().setLevel(previous)
    if tune is not None:
        tune(model)
    torch.save(model.state_dict(), weights)
    return root


def write_funasr_paraformer_dir(root: str | Path, seed: int = 0, d_model: int = 32) -> Path:
    """A tiny SeACo-Paraformer (the model behind FunASR's ``paraformer-zh``: timestamps + hotwords).

    Same classes as ``speech_seaco_paraformer_large_asr_nat-zh-cn-16k-common-vocab8404-pytorch``
    (SANM encoder, CifPredictorV3 with timestamp upsampling, SANM decoders, WavFrontend with LFR 7/6),
    with 2 encoder/decoder blocks of width ``d_model`` and a 40-token vocabulary.
    """
    import json

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tokens = ["<blank>", "<s>", "</s>", *FUNASR_TINY_CHARS, "<unk>"]
    (root / "tokens.json").write_text(json.dumps(tokens, ensure_ascii=False), encoding="utf-8")
    (root / "seg_dict").write_text(
        "".join(f"{c} {c}\n" for c in FUNASR_TINY_CHARS), encoding="utf-8"
    )
    _write_kaldi_cmvn(root / "am.mvn", 80 * 7)
    sanm_decoder = {
        "attention_heads": 2,
        "linear_units": 2 * d_model,
        "num_blocks": 2,
        "dropout_rate": 0.1,
        "positional_dropout_rate": 0.1,
        "self_attention_dropout_rate": 0.1,
        "src_attention_dropout_rate": 0.1,
        "att_layer_num": 2,
        "kernel_size": 11,
        "sanm_shfit": 0,
    }
    config = {
        "model": "SeacoParaformer",
        "model_conf": {
            "ctc_weight": 0.0,
            "lsm_weight": 0.1,
            "length_normalized_loss": True,
            "predictor_weight": 1.0,
            "predictor_bias": 1,
            "sampling_ratio": 0.75,
            "inner_dim": d_model,
            "bias_encoder_type": "lstm",
            "bias_encoder_bid": False,
            "seaco_lsm_weight": 0.1,
            "seaco_length_normalized_loss": True,
            "train_decoder": True,
            "NO_BIAS": len(tokens) - 2,
        },
        "encoder": "SANMEncoder",
        "encoder_conf": {
            "output_size": d_model,
            "attention_heads": 2,
            "linear_units": 2 * d_model,
            "num_blocks": 2,
            "dropout_rate": 0.1,
            "positional_dropout_rate": 0.1,
            "attention_dropout_rate": 0.1,
            "input_layer": "pe",
            "pos_enc_class": "SinusoidalPositionEncoder",
            "normalize_before": True,
            "kernel_size": 11,
            "sanm_shfit": 0,
            "selfattention_layer_type": "sanm",
        },
        "decoder": "ParaformerSANMDecoder",
        "decoder_conf": sanm_decoder,
        "seaco_decoder": "ParaformerSANMDecoder",
        "seaco_decoder_conf": {
            **sanm_decoder,
            "kernel_size": 21,
            "use_output_layer": False,
            "wo_input_layer": True,
        },
        "predictor": "CifPredictorV3",
        "predictor_conf": {
            "idim": d_model,
            "threshold": 1.0,
            "l_order": 1,
            "r_order": 1,
            "tail_threshold": 0.45,
            "smooth_factor2": 0.25,
            "noise_threshold2": 0.01,
            "upsample_times": 3,
            "use_cif1_cnn": False,
            "upsample_type": "cnn_blstm",
        },
        "frontend": "WavFrontend",
        "frontend_conf": {
            "fs": 16000,
            "window": "hamming",
            "n_mels": 80,
            "frame_length": 25,
            "frame_shift": 10,
            "lfr_m": 7,
            "lfr_n": 6,
            "dither": 0.0,
        },
        "specaug": "SpecAugLFR",
        "specaug_conf": {
            "apply_time_warp": False,
            "time_warp_window": 5,
            "time_warp_mode": "bicubic",
            "apply_freq_mask": True,
            "freq_mask_width_range": [0, 30],
            "lfr_rate": 6,
            "num_freq_mask": 1,
            "apply_time_mask": True,
            "time_mask_width_range": [0, 12],
            "num_time_mask": 1,
        },
        "tokenizer": "CharTokenizer",
        "tokenizer_conf": {"unk_symbol": "<unk>", "split_with_space": True},
        "ctc_conf": {
            "dropout_rate": 0.0,
            "ctc_type": "builtin",
            "reduce": True,
            "ignore_nan_grad": True,
        },
        "normalize": None,
    }

    def fire_tokens(model):
        # Random weights give CIF weights near 0.5 per frame, i.e. about one token per 120 ms:
        # enough tokens (and timestamps) for every code path after the predictor to run.
        with torch.no_grad():
            model.predictor.cif_output.bias.fill_(0.0)
            model.predictor.cif_output2.bias.fill_(0.0)

    return write_funasr_dir(
        root,
        config,
        {
            "init_param": "model.pt",
            "config": "config.yaml",
            "tokenizer_conf": {"token_list": "tokens.json", "seg_dict_file": "seg_dict"},
            "frontend_conf": {"cmvn_file": "am.mvn"},
        },
        "iic/speech_seaco_paraformer_large_asr_nat-zh-cn-16k-common-vocab8404-pytorch",
        seed,
        tune=fire_tokens,
    )


def write_funasr_fsmn_vad_dir(root: str | Path, seed: int = 0) -> Path:
    """A tiny FSMN VAD (``speech_fsmn_vad_zh-cn-16k-common-pytorch`` layout; 2 small FSMN layers).

    Its random weights are tuned so that the speech/silence decision follows the input: the
    output layer reads one log-mel energy feature, so loud frames are speech and quiet ones are not.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    # log-mel (FunASR scales samples to int16 range): digital silence -15.9, -60 dBFS noise ~11,
    # speech at -20 dBFS ~16. Shift -12, scale 0.5 puts the speech/silence boundary near -50 dBFS.
    _write_kaldi_cmvn(root / "am.mvn", 400, shift=-12.0, scale=0.5)
    config = {
        "frontend": "WavFrontendOnline",
        "frontend_conf": {
            "fs": 16000,
            "window": "hamming",
            "n_mels": 80,
            "frame_length": 25,
            "frame_shift": 10,
            "dither": 0.0,
            "lfr_m": 5,
            "lfr_n": 1,
        },
        "model": "FsmnVADStreaming",
        "model_conf": {
            "sample_rate": 16000,
            "detect_mode": 1,
            "snr_mode": 0,
            "max_end_silence_time": 800,
            "max_start_silence_time": 3000,
            "do_start_point_detection": True,
            "do_end_point_detection": True,
            "window_size_ms": 200,
            "sil_to_speech_time_thres": 150,
            "speech_to_sil_time_thres": 150,
            "speech_2_noise_ratio": 1.0,
            "do_extend": 1,
            "lookback_time_start_point": 200,
            "lookahead_time_end_point": 100,
            "max_single_segment_time": 60000,
            "snr_thres": -100.0,
            "noise_frame_num_used_for_snr": 100,
            "decibel_thres": -100.0,
            "speech_noise_thres": 0.6,
            "fe_prior_thres": 0.0001,
            "silence_pdf_num": 1,
            "sil_pdf_ids": [0],
            "speech_noise_thresh_low": -0.1,
            "speech_noise_thresh_high": 0.3,
            "output_frame_probs": False,
            "frame_in_ms": 10,
            "frame_length_ms": 25,
        },
        "encoder": "FSMN",
        "encoder_conf": {
            "input_dim": 400,
            "input_affine_dim": 32,
            "fsmn_layers": 2,
            "linear_dim": 32,
            "proj_dim": 16,
            "lorder": 20,
            "rorder": 0,
            "lstride": 1,
            "rstride": 0,
            "output_affine_dim": 32,
            "output_dim": 248,
        },
    }

    def energy_driven(model):
        # Keep the random weights (scaled down) and add one explicit path: unit 0 of every layer
        # carries relu(mean normalised log-mel), which lowers the silence pdf's logit.
        enc = model.encoder
        with torch.no_grad():
            for p in enc.parameters():
                p.mul_(0.01)
            enc.in_linear1.linear.weight[0].fill_(1.0 / 400)
            enc.in_linear1.linear.bias[0] = 0.0
            enc.in_linear2.linear.weight[0].zero_()
            enc.in_linear2.linear.weight[0, 0] = 1.0
            enc.in_linear2.linear.bias[0] = 0.0
            for block in enc.fsmn:
                block.linear.linear.weight[0].zero_()
                block.linear.linear.weight[0, 0] = 1.0
                block.fsmn_block.conv_left.weight[0].zero_()
                block.affine.linear.weight[0].zero_()
                block.affine.linear.weight[0, 0] = 1.0
                block.affine.linear.bias[0] = 0.0
            enc.out_linear1.linear.weight[0].zero_()
            enc.out_linear1.linear.weight[0, 0] = 1.0
            enc.out_linear1.linear.bias[0] = 0.0
            enc.out_linear2.linear.weight[:, 0] = 0.0
            enc.out_linear2.linear.weight[0, 0] = -20.0  # pdf 0 is silence (sil_pdf_ids: [0])
            enc.out_linear2.linear.bias.zero_()
            enc.out_linear2.linear.bias[0] = 8.0

    return write_funasr_dir(
        root,
        config,
        {
            "init_param": "model.pt",
            "config": "config.yaml",
            "frontend_conf": {"cmvn_file": "am.mvn"},
        },
        "iic/speech_fsmn_vad_zh-cn-16k-common-pytorch",
        seed,
        tune=energy_driven,
    )


def write_funasr_ct_punc_dir(root: str | Path, seed: int = 0, d_model: int = 32) -> Path:
    """A tiny CT-Transformer punctuation model (``punc_ct-transformer_cn-en-common-vocab471067-large`` layout)."""
    import json

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tokens = ["<blank>", "<s>", "</s>", *FUNASR_TINY_CHARS, "<unk>"]
    (root / "tokens.json").write_text(json.dumps(tokens, ensure_ascii=False), encoding="utf-8")
    (root / "jieba_usr_dict").write_text(
        "".join(f"{a}{b} 10\n" for a, b in zip(FUNASR_TINY_CHARS[::2], FUNASR_TINY_CHARS[1::2])),
        encoding="utf-8",
    )
    config = {
        "model": "CTTransformer",
        "model_conf": {
            "ignore_id": 0,
            "embed_unit": d_model,
            "att_unit": d_model,
            "dropout_rate": 0.1,
            "punc_list": ["<unk>", "_", "，", "。", "？", "、"],
            "punc_weight": [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
            "sentence_end_id": 3,
        },
        "encoder": "SANMEncoder",
        "encoder_conf": {
            "input_size": d_model,
            "output_size": d_model,
            "attention_heads": 2,
            "linear_units": 2 * d_model,
            "num_blocks": 2,
            "dropout_rate": 0.1,
            "positional_dropout_rate": 0.1,
            "attention_dropout_rate": 0.1,
            "input_layer": "pe",
            "pos_enc_class": "SinusoidalPositionEncoder",
            "normalize_before": True,
            "kernel_size": 11,
            "sanm_shfit": 0,
            "selfattention_layer_type": "sanm",
            "padding_idx": 0,
        },
        "tokenizer": "CharTokenizer",
        "tokenizer_conf": {"unk_symbol": "<unk>"},
        "task": "punctuation",
    }
    return write_funasr_dir(
        root,
        config,
        {
            "init_param": "model.pt",
            "config": "config.yaml",
            "tokenizer_conf": {"token_list": "tokens.json"},
        },
        "iic/punc_ct-transformer_cn-en-common-vocab471067-large",
        seed,
    )


def write_funasr_campplus_dir(root: str | Path, seed: int = 0) -> Path:
    """A tiny CAM++ speaker model (``speech_campplus_sv_zh-cn_16k-common`` layout: the weights file is
    ``campplus_cn_common.bin`` as in the release, named by configuration.json)."""
    root = Path(root)
    config = {
        "model": "CAMPPlus",
        "model_conf": {
            "feat_dim": 80,
            "embedding_size": 32,
            "growth_rate": 8,
            "bn_size": 2,
            "init_channels": 16,
            "config_str": "batchnorm-relu",
            "memory_efficient": True,
            "output_level": "segment",
        },
        "task": "speaker-verification",
    }
    return write_funasr_dir(
        root,
        config,
        {"init_param": "campplus_cn_common.bin", "config": "config.yaml"},
        "iic/speech_campplus_sv_zh-cn_16k-common",
        seed,
    )


def write_funasr_model_dirs(models_dir: str | Path, seed: int = 0) -> dict[str, Path]:
    """All four paper-profile diarization models under ``models_dir/<model id>`` (the layout
    ``Settings.model_path`` resolves): ``paraformer``, ``fsmn_vad``, ``ct_punc``, ``campplus``."""
    models_dir = Path(models_dir)
    return {
        "paraformer": write_funasr_paraformer_dir(models_dir / "paraformer", seed),
        "fsmn_vad": write_funasr_fsmn_vad_dir(models_dir / "fsmn_vad", seed),
        "ct_punc": write_funasr_ct_punc_dir(models_dir / "ct_punc", seed),
        "campplus": write_funasr_campplus_dir(models_dir / "campplus", seed),
    }


# --- SenseVoiceSmall (paper profile: emotion / audio events / language) --------------------------

SENSEVOICE_TINY_TEXT = [
    "hello how are you today",
    "the weather is nice",
    "please speak a little slower",
    "我们明天见",
    "今天天气真好",
    "你在说什么",
    "good morning everyone",
    "thank you very much",
]


def write_tiny_sentencepiece(
    path: str | Path, user_symbols: list[str], vocab_size: int = 96
) -> Path:
    """A tiny BPE SentencePiece model with ``user_symbols`` as single pieces (how SenseVoice's
    ``chn_jpn_yue_eng_ko_spectok.bpe.model`` holds its ``<|tag|>`` tokens)."""
    import io

    import sentencepiece as spm

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(SENSEVOICE_TINY_TEXT * 8),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="bpe",
        character_coverage=1.0,
        user_defined_symbols=user_symbols,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    path.write_bytes(model.getvalue())
    return path


def write_sensevoice_small_dir(
    root: str | Path, seed: int = 0, d_model: int = 32, emit: tuple[str, ...] | None = None
) -> Path:
    """A tiny SenseVoiceSmall dir in the ``iic/SenseVoiceSmall`` layout (configuration.json,
    config.yaml, model.pt, chn_jpn_yue_eng_ko_spectok.bpe.model, am.mvn), loadable by
    ``funasr.AutoModel(model=root)``: SenseVoiceEncoderSmall with 2 + 1 blocks of width ``d_model``.

    Random weights decode to arbitrary tokens. With ``emit`` (four tags, e.g.
    ``("<|en|>", "<|HAPPY|>", "<|Speech|>", "<|woitn|>")``) only the CTC output layer is fitted,
    on the model's own encoder outputs for a few noise/tone inputs, so that the four query frames
    decode to those tags and the audio frames to blank: a known rich transcription that comes
    out of the real inference code (front end, query embeddings, encoder, CTC, tokenizer).
    """
    import numpy as np

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    write_tiny_sentencepiece(root / DEFAULT_BPE, all_tags())
    _write_kaldi_cmvn(root / "am.mvn", 80 * 7)
    frontend_conf = {
        "fs": 16000,
        "window": "hamming",
        "n_mels": 80,
        "frame_length": 25,
        "frame_shift": 10,
        "lfr_m": 7,
        "lfr_n": 6,
    }
    config = {
        "encoder": "SenseVoiceEncoderSmall",
        "encoder_conf": {
            "output_size": d_model,
            "attention_heads": 2,
            "linear_units": 2 * d_model,
            "num_blocks": 2,
            "tp_blocks": 1,
            "dropout_rate": 0.1,
            "positional_dropout_rate": 0.1,
            "attention_dropout_rate": 0.1,
            "input_layer": "pe",
            "pos_enc_class": "SinusoidalPositionEncoder",
            "normalize_before": True,
            "kernel_size": 11,
            "sanm_shfit": 0,
            "selfattention_layer_type": "sanm",
        },
        "model": "SenseVoiceSmall",
        "model_conf": {"length_normalized_loss": True, "sos": 1, "eos": 2, "ignore_id": -1},
        "tokenizer": "SentencepiecesTokenizer",
        "tokenizer_conf": {"bpemodel": None, "unk_symbol": "<unk>", "split_with_space": True},
        "frontend": "WavFrontend",
        "frontend_conf": {**frontend_conf, "cmvn_file": None},
    }

    def emit_tags(model):
        import sentencepiece as spm
        from funasr.frontends.wav_frontend import WavFrontend

        sp = spm.SentencePieceProcessor(model_file=str(root / DEFAULT_BPE))
        targets = [sp.piece_to_id(tag) for tag in emit]
        frontend = WavFrontend(cmvn_file=str(root / "am.mvn"), **frontend_conf)
        rng = np.random.default_rng(seed)
        inputs = []
        for n in (4000, 8000, 16000, 24000, 40000):
            t = np.arange(n) / 16000.0
            inputs.append(
                rng.normal(0, 0.05, n) + 0.3 * np.sin(2 * np.pi * rng.uniform(100, 300) * t)
            )
            inputs.append(rng.normal(0, rng.uniform(0.001, 0.3), n))
        model.eval()
        outs = []
        with torch.no_grad():
            for audio in inputs:
                wav = torch.tensor(audio, dtype=torch.float32)[None]
                feats, lens = frontend(wav, torch.tensor([wav.shape[1]]))
                query = model.embed(torch.LongTensor([[0, 1, 2, model.textnorm_dict["woitn"]]]))
                speech = torch.cat((query, feats), dim=1)
                enc, _ = model.encoder(speech, lens + 4)
                outs.append(enc[0])
        head = model.ctc.ctc_lo
        labels = [torch.tensor(targets + [0] * (o.shape[0] - 4)) for o in outs]
        optimiser = torch.optim.Adam(head.parameters(), lr=0.1)
        for _ in range(120):
            optimiser.zero_grad()
            loss = sum(torch.nn.functional.cross_entropy(head(o), y) for o, y in zip(outs, labels))
            loss.backward()
            optimiser.step()

    return write_funasr_dir(
        root,
        config,
        {
            "init_param": "model.pt",
            "config": "config.yaml",
            "tokenizer_conf": {"bpemodel": DEFAULT_BPE},
            "frontend_conf": {"cmvn_file": "am.mvn"},
        },
        "iic/SenseVoiceSmall",
        seed,
        tune=emit_tags if emit else None,
    )
