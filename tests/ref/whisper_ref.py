#!/usr/bin/env python3
"""whisper_ref.py — a PyTorch reference for mmpipe's Whisper, written from openai/whisper
(model.py: AudioEncoder / TextDecoder / MultiHeadAttention without SDPA; decoding.py: DecodingTask,
SuppressBlank, SuppressTokens, ApplyTimestampRules, GreedyDecoder, BeamSearchDecoder,
MaximumLikelihoodRanker; transcribe.py: the seek loop; timing.py: find_alignment / add_word_timestamps;
tokenizer.py: special tokens and non_speech_tokens) with tiktoken's byte-pair merge over the vocabulary
of the model file. Weights come from a whisper.cpp ggml .bin (F32 / F16 / Q8_0 / Q4_0 dequantized here
with numpy) or an HF folder (config.json + model.safetensors, parsed here).

usage: whisper_ref.py CASES.json
  CASES.json: {"model": PATH, "audio": WAV, "out": DIR, "cases": [{"name": ..., "kind": ..., ...}]}
  kinds: mel, encode, logits, decode, filters, transcribe, detect, tokenize, nst
  Outputs DIR/NAME.json (and DIR/NAME.f32 raw float32 arrays for mel / encode / logits).
"""
import json
import math
import os
import re
import string
import struct
import sys
import zlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mel_ref  # noqa: E402

torch.set_grad_enabled(False)
N_FRAMES, HOP_LENGTH, SAMPLE_RATE = 3000, 160, 16000
FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH
TOKENS_PER_SECOND = FRAMES_PER_SECOND // 2
LANGUAGES = ("en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no th ur hr bg lt "
             "la mi ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw gl mr pa si km sn yo so af oc "
             "ka be tg sd gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl mg as tt haw ln ha ba jw su yue").split()

# ---------------------------------------------------------------- model files

F16, Q4_0, Q8_0 = 1, 2, 8


def dequant(ttype, raw, n):
    if ttype == 0:
        return np.frombuffer(raw, dtype="<f4", count=n).copy()
    if ttype == F16:
        return np.frombuffer(raw, dtype="<f2", count=n).astype(np.float32)
    if ttype == Q8_0:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 34)
        d = b[:, :2].copy().view("<f2").astype(np.float32)
        q = b[:, 2:].copy().view(np.int8).astype(np.float32)
        return (d * q).reshape(-1)[:n]
    if ttype == Q4_0:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 18)
        d = b[:, :2].copy().view("<f2").astype(np.float32)
        qs = b[:, 2:]
        lo = (qs & 0x0F).astype(np.int32) - 8
        hi = (qs >> 4).astype(np.int32) - 8
        return (d * np.concatenate([lo, hi], axis=1).astype(np.float32)).reshape(-1)[:n]
    raise ValueError(f"ggml type {ttype} not handled by the reference")


def type_bytes(ttype, n):
    return {0: 4 * n, F16: 2 * n, Q8_0: n // 32 * 34, Q4_0: n // 32 * 18}[ttype]


def read_ggml(path):
    d = open(path, "rb").read()
    off = 0

    def i32():
        nonlocal off
        v = struct.unpack_from("<i", d, off)[0]
        off += 4
        return v

    assert struct.unpack_from("<I", d, 0)[0] == 0x67676D6C
    off = 4
    keys = ["n_vocab", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer", "n_text_ctx", "n_text_state",
            "n_text_head", "n_text_layer", "n_mels", "ftype"]
    hp = {k: i32() for k in keys}
    n_mel, n_fft = i32(), i32()
    filters = np.frombuffer(d, dtype="<f4", count=n_mel * n_fft, offset=off).reshape(n_mel, n_fft).copy()
    off += 4 * n_mel * n_fft
    n_tok = i32()
    vocab = []
    for _ in range(n_tok):
        ln = i32()
        vocab.append(d[off:off + ln])
        off += ln
    tensors = {}
    while off < len(d):
        nd, nl, tt = i32(), i32(), i32()
        ne = [i32() for _ in range(nd)]
        name = d[off:off + nl].decode()
        off += nl
        n = int(np.prod(ne)) if nd else 1
        nb = type_bytes(tt, n)
        a = dequant(tt, d[off:off + nb], n)
        off += nb
        tensors[name] = a.reshape(list(reversed(ne)) if nd else [])
    return hp, filters, vocab, tensors


def read_safetensors(path):
    d = open(path, "rb").read()
    n = struct.unpack_from("<Q", d, 0)[0]
    hdr = json.loads(d[8:8 + n])
    base = 8 + n
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        dt = {"F32": "<f4", "F16": "<f2", "BF16": None}[v["dtype"]]
        arr = np.frombuffer(d[base + a:base + b], dtype=dt).astype(np.float32)
        out[k] = arr.reshape(v["shape"])
    return out


HF_MAP = [("encoder.embed_positions.weight", "encoder.positional_embedding"),
          ("decoder.embed_positions.weight", "decoder.positional_embedding"),
          ("decoder.embed_tokens.weight", "decoder.token_embedding.weight"),
          ("encoder.layer_norm.", "encoder.ln_post."), ("decoder.layer_norm.", "decoder.ln."),
          (".layers.", ".blocks."), (".encoder_attn_layer_norm.", ".cross_attn_ln."),
          (".self_attn_layer_norm.", ".attn_ln."), (".final_layer_norm.", ".mlp_ln."),
          (".encoder_attn.", ".cross_attn."), (".self_attn.", ".attn."), (".q_proj.", ".query."),
          (".k_proj.", ".key."), (".v_proj.", ".value."), (".out_proj.", ".out."), (".fc1.", ".mlp.0."),
          (".fc2.", ".mlp.2.")]


def read_hf(folder):
    cfg = json.load(open(os.path.join(folder, "config.json")))
    st = read_safetensors(os.path.join(folder, "model.safetensors"))
    tensors = {}
    for k, v in st.items():
        if k.startswith("model."):
            k = k[len("model."):]
        for a, b in HF_MAP:
            k = k.replace(a, b)
        tensors[k] = v
    hp = dict(n_vocab=cfg["vocab_size"], n_audio_ctx=cfg["max_source_positions"], n_audio_state=cfg["d_model"],
              n_audio_head=cfg["encoder_attention_heads"], n_audio_layer=cfg["encoder_layers"],
              n_text_ctx=cfg["max_target_positions"], n_text_state=cfg["d_model"],
              n_text_head=cfg["decoder_attention_heads"], n_text_layer=cfg["decoder_layers"],
              n_mels=cfg["num_mel_bins"], ftype=0)
    tj = json.load(open(os.path.join(folder, "tokenizer.json")))
    byte_dec = {v: k for k, v in bytes_to_unicode().items()}
    inv = {}
    for s, i in tj["model"]["vocab"].items():
        inv[i] = bytes(byte_dec[ch] for ch in s)
    n_text = 50257 if hp["n_vocab"] >= 51865 else 50256
    vocab = [inv.get(i, b"") for i in range(n_text)]
    return hp, None, vocab, tensors


def bytes_to_unicode():  # GPT-2's table, as in openai/gpt-2 encoder.py
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


# ---------------------------------------------------------------- model.py

class LayerNorm(nn.LayerNorm):
    pass


def sinusoids(length, channels, max_timescale=10000):
    log_timescale_increment = np.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = torch.exp(-log_timescale_increment * torch.arange(channels // 2))
    scaled_time = torch.arange(length)[:, np.newaxis] * inv_timescales[np.newaxis, :]
    return torch.cat([torch.sin(scaled_time), torch.cos(scaled_time)], dim=1)


class MultiHeadAttention(nn.Module):
    def __init__(self, n_state, n_head):
        super().__init__()
        self.n_head = n_head
        self.query = nn.Linear(n_state, n_state)
        self.key = nn.Linear(n_state, n_state, bias=False)
        self.value = nn.Linear(n_state, n_state)
        self.out = nn.Linear(n_state, n_state)

    def forward(self, x, xa=None, mask=None, kv_cache=None):
        q = self.query(x)
        if xa is None:  # self-attention: the cache holds the previous keys / values
            k, v = self.key(x), self.value(x)
            if kv_cache is not None:
                if self in kv_cache:
                    k = torch.cat([kv_cache[self][0], k], dim=1)
                    v = torch.cat([kv_cache[self][1], v], dim=1)
                kv_cache[self] = (k, v)
        else:  # cross-attention: computed once per audio
            if kv_cache is not None and self in kv_cache:
                k, v = kv_cache[self]
            else:
                k, v = self.key(xa), self.value(xa)
                if kv_cache is not None:
                    kv_cache[self] = (k, v)
        wv, qk = self.qkv_attention(q, k, v, mask)
        return self.out(wv), qk

    def qkv_attention(self, q, k, v, mask=None):
        n_batch, n_ctx, n_state = q.shape
        scale = (n_state // self.n_head) ** -0.25
        q = q.view(*q.shape[:2], self.n_head, -1).permute(0, 2, 1, 3)
        k = k.view(*k.shape[:2], self.n_head, -1).permute(0, 2, 1, 3)
        v = v.view(*v.shape[:2], self.n_head, -1).permute(0, 2, 1, 3)
        qk = (q * scale) @ (k * scale).transpose(-1, -2)
        if mask is not None:
            n_kv = k.shape[2]
            qk = qk + mask[n_kv - n_ctx:n_kv, :n_kv]
        qk = qk.float()
        w = F.softmax(qk, dim=-1).to(q.dtype)
        out = (w @ v).permute(0, 2, 1, 3).flatten(start_dim=2)
        return out, qk.detach()


class ResidualAttentionBlock(nn.Module):
    def __init__(self, n_state, n_head, n_mlp, cross_attention=False):
        super().__init__()
        self.attn = MultiHeadAttention(n_state, n_head)
        self.attn_ln = LayerNorm(n_state)
        self.cross_attn = MultiHeadAttention(n_state, n_head) if cross_attention else None
        self.cross_attn_ln = LayerNorm(n_state) if cross_attention else None
        self.mlp = nn.Sequential(nn.Linear(n_state, n_mlp), nn.GELU(), nn.Linear(n_mlp, n_state))
        self.mlp_ln = LayerNorm(n_state)
        self.cross_qk = None

    def forward(self, x, xa=None, mask=None, kv_cache=None):
        x = x + self.attn(self.attn_ln(x), mask=mask, kv_cache=kv_cache)[0]
        if self.cross_attn:
            o, self.cross_qk = self.cross_attn(self.cross_attn_ln(x), xa, kv_cache=kv_cache)
            x = x + o
        x = x + self.mlp(self.mlp_ln(x))
        return x


class Whisper(nn.Module):
    def __init__(self, hp, tensors):
        super().__init__()
        self.hp = hp
        D = hp["n_audio_state"]
        n_mlp = tensors["encoder.blocks.0.mlp.0.weight"].shape[0]
        self.conv1 = nn.Conv1d(hp["n_mels"], D, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(D, D, kernel_size=3, stride=2, padding=1)
        self.enc_blocks = nn.ModuleList([ResidualAttentionBlock(D, hp["n_audio_head"], n_mlp)
                                         for _ in range(hp["n_audio_layer"])])
        self.ln_post = LayerNorm(D)
        self.token_embedding = nn.Embedding(hp["n_vocab"], D)
        self.dec_blocks = nn.ModuleList([ResidualAttentionBlock(D, hp["n_text_head"], n_mlp, True)
                                         for _ in range(hp["n_text_layer"])])
        self.ln = LayerNorm(D)
        n_ctx = hp["n_text_ctx"]
        self.mask = torch.empty(n_ctx, n_ctx).fill_(-np.inf).triu_(1)
        sd = {}
        for k, v in tensors.items():
            k2 = (k.replace("encoder.blocks.", "enc_blocks.").replace("decoder.blocks.", "dec_blocks.")
                  .replace("encoder.conv", "conv").replace("encoder.ln_post", "ln_post")
                  .replace("decoder.token_embedding", "token_embedding").replace("decoder.ln.", "ln."))
            sd[k2] = torch.from_numpy(np.ascontiguousarray(v))
        self.enc_pos = sd.pop("encoder.positional_embedding")
        self.dec_pos = sd.pop("decoder.positional_embedding")
        for k in ("conv1.bias", "conv2.bias"):
            sd[k] = sd[k].reshape(-1)
        self.load_state_dict(sd, strict=True)
        self.eval()

    def encoder(self, mel):
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x))
        x = x.permute(0, 2, 1)
        x = x + self.enc_pos
        for b in self.enc_blocks:
            x = b(x)
        return self.ln_post(x)

    def decoder(self, tokens, xa, kv_cache=None, offset=0):
        x = self.token_embedding(tokens) + self.dec_pos[offset:offset + tokens.shape[-1]]
        for b in self.dec_blocks:
            x = b(x, xa, mask=self.mask, kv_cache=kv_cache)
        x = self.ln(x)
        return (x @ torch.transpose(self.token_embedding.weight, 0, 1)).float()


# ---------------------------------------------------------------- tokenizer.py

# tiktoken's pattern with \p{L} / \p{N} as Python's Unicode classes
PAT = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+""")
PUNCT = string.punctuation


class Tokenizer:
    def __init__(self, hp, vocab, language=None, task=None):
        self.n_vocab = hp["n_vocab"]
        self.multilingual = self.n_vocab >= 51865
        self.num_languages = self.n_vocab - 51765 - int(self.multilingual)
        self.n_text = 50257 if self.multilingual else 50256
        # ids 0..255: the bytes in GPT-2's bytes_to_unicode order (whisper.cpp files hold U+FFFD for the
        # non-ASCII ones)
        self.vocab = [bytes([b]) for b in bytes_to_unicode().keys()] + list(vocab[256:self.n_text])
        self.rank = {}
        for i, b in enumerate(self.vocab):
            if b and b not in self.rank:
                self.rank[b] = i
        eot = self.n_text
        self.eot = eot
        self.sot = eot + 1
        self.langs = LANGUAGES[:self.num_languages]
        self.translate = self.sot + 1 + self.num_languages
        self.transcribe = self.translate + 1
        self.sot_lm = self.transcribe + 1
        self.sot_prev = self.sot_lm + 1
        self.no_speech = self.sot_prev + 1
        self.no_timestamps = self.no_speech + 1
        self.timestamp_begin = self.no_timestamps + 1
        if not self.multilingual:
            language, task = None, None
        else:
            language = language or "en"
            task = task or "transcribe"
        self.language, self.task = language, task
        seq = [self.sot]
        if language is not None:
            seq.append(self.sot + 1 + self.langs.index(language))
        if task is not None:
            seq.append(self.transcribe if task == "transcribe" else self.translate)
        self.sot_sequence = tuple(seq)
        self.sot_sequence_including_notimestamps = tuple(seq + [self.no_timestamps])
        self.all_language_tokens = tuple(self.sot + 1 + i for i in range(self.num_languages))
        self.all_language_codes = self.langs

    def token_bytes(self, t):
        if t < self.n_text:
            return self.vocab[t]
        if t == self.eot:
            return b"<|endoftext|>"
        if t == self.sot:
            return b"<|startoftranscript|>"
        if self.sot < t <= self.sot + self.num_languages:
            return f"<|{self.langs[t - self.sot - 1]}|>".encode()
        names = {self.translate: "<|translate|>", self.transcribe: "<|transcribe|>", self.sot_lm: "<|startoflm|>",
                 self.sot_prev: "<|startofprev|>", self.no_speech: "<|nospeech|>",
                 self.no_timestamps: "<|notimestamps|>"}
        if t in names:
            return names[t].encode()
        return f"<|{(t - self.timestamp_begin) * 0.02:.2f}|>".encode()

    def decode(self, ids):
        return b"".join(self.token_bytes(t) for t in ids if t < self.timestamp_begin).decode("utf-8", errors="replace")

    def decode_with_timestamps(self, ids):
        return b"".join(self.token_bytes(t) for t in ids).decode("utf-8", errors="replace")

    def _bpe(self, piece):  # tiktoken _byte_pair_merge: merge the lowest-ranked adjacent pair
        parts = [piece[i:i + 1] for i in range(len(piece))]
        while len(parts) > 1:
            best, bi = None, -1
            for i in range(len(parts) - 1):
                r = self.rank.get(parts[i] + parts[i + 1])
                if r is not None and (best is None or r < best):
                    best, bi = r, i
            if bi < 0:
                break
            parts[bi:bi + 2] = [parts[bi] + parts[bi + 1]]
        return [self.rank[p] for p in parts]

    def encode(self, text):
        out = []
        for m in PAT.finditer(text):
            out += self._bpe(m.group(0).encode("utf-8"))
        return out

    def non_speech_tokens(self):
        symbols = list('"#()*+/:;<=>@[\\]^_`{|}~「」『』')
        symbols += "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪".split()
        miscellaneous = set("♩♪♫♬♭♮♯")
        result = {self.encode(" -")[0], self.encode(" '")[0]}
        for symbol in symbols + list(miscellaneous):
            for tokens in [self.encode(symbol), self.encode(" " + symbol)]:
                if len(tokens) == 1 or symbol in miscellaneous:
                    result.add(tokens[0])
        return tuple(sorted(result))

    def split_to_word_tokens(self, tokens):
        if self.language in {"zh", "ja", "th", "lo", "my", "yue"}:
            return self.split_tokens_on_unicode(tokens)
        return self.split_tokens_on_spaces(tokens)

    def split_tokens_on_unicode(self, tokens):
        decoded_full = self.decode_with_timestamps(tokens)
        replacement_char = "\ufffd"
        words, word_tokens, current_tokens, unicode_offset = [], [], [], 0
        for token in tokens:
            current_tokens.append(token)
            decoded = self.decode_with_timestamps(current_tokens)
            if (replacement_char not in decoded
                    or decoded_full[unicode_offset + decoded.index(replacement_char)] == replacement_char):
                words.append(decoded)
                word_tokens.append(current_tokens)
                current_tokens = []
                unicode_offset += len(decoded)
        return words, word_tokens

    def split_tokens_on_spaces(self, tokens):
        subwords, subword_tokens_list = self.split_tokens_on_unicode(tokens)
        words, word_tokens = [], []
        for subword, subword_tokens in zip(subwords, subword_tokens_list):
            special = subword_tokens[0] >= self.eot
            with_space = subword.startswith(" ")
            punctuation = subword.strip() in string.punctuation
            if special or with_space or punctuation or len(words) == 0:
                words.append(subword)
                word_tokens.append(subword_tokens)
            else:
                words[-1] = words[-1] + subword
                word_tokens[-1].extend(subword_tokens)
        return words, word_tokens


def compression_ratio(text):
    b = text.encode("utf-8")
    return len(b) / len(zlib.compress(b))


# ---------------------------------------------------------------- decoding.py

class Options:
    def __init__(self, **kw):
        self.task = kw.get("task", "transcribe")
        self.language = kw.get("language")
        self.temperature = kw.get("temperature", 0.0)
        self.sample_len = kw.get("sample_len")
        self.best_of = kw.get("best_of")
        self.beam_size = kw.get("beam_size")
        self.patience = kw.get("patience")
        self.length_penalty = kw.get("length_penalty")
        self.prompt = kw.get("prompt")
        self.suppress_tokens = kw.get("suppress_tokens", "-1")
        self.suppress_blank = kw.get("suppress_blank", True)
        self.without_timestamps = kw.get("without_timestamps", False)
        self.max_initial_timestamp = kw.get("max_initial_timestamp", 1.0)


class Inference:
    def __init__(self, model, initial_token_length):
        self.model = model
        self.initial_token_length = initial_token_length
        self.kv = None
        self.offset = 0

    def logits(self, tokens, audio_features):
        if self.kv is None:
            self.kv = [dict() for _ in range(tokens.shape[0])]
        if tokens.shape[-1] > self.initial_token_length:
            tokens = tokens[:, -1:]
        out = []
        for b in range(tokens.shape[0]):  # one cache per row (rows are re-ordered by beam search)
            out.append(self.model.decoder(tokens[b:b + 1], audio_features[b:b + 1], self.kv[b], self.offset))
        self.offset += tokens.shape[-1]
        return torch.cat(out, dim=0)

    def rearrange_kv_cache(self, source_indices):
        self.kv = [dict(self.kv[i]) for i in source_indices]


class SuppressBlank:
    def __init__(self, tokenizer, sample_begin):
        self.tokenizer, self.sample_begin = tokenizer, sample_begin

    def apply(self, logits, tokens):
        if tokens.shape[1] == self.sample_begin:
            logits[:, self.tokenizer.encode(" ") + [self.tokenizer.eot]] = -np.inf


class SuppressTokens:
    def __init__(self, suppress_tokens):
        self.suppress_tokens = list(suppress_tokens)

    def apply(self, logits, tokens):
        logits[:, self.suppress_tokens] = -np.inf


class ApplyTimestampRules:
    def __init__(self, tokenizer, sample_begin, max_initial_timestamp_index):
        self.tokenizer = tokenizer
        self.sample_begin = sample_begin
        self.max_initial_timestamp_index = max_initial_timestamp_index

    def apply(self, logits, tokens):
        tk = self.tokenizer
        logits[:, tk.no_timestamps] = -np.inf
        for k in range(tokens.shape[0]):
            sampled_tokens = tokens[k, self.sample_begin:]
            seq = [t for t in sampled_tokens.tolist()]
            last_was_timestamp = len(seq) >= 1 and seq[-1] >= tk.timestamp_begin
            penultimate_was_timestamp = len(seq) < 2 or seq[-2] >= tk.timestamp_begin
            if last_was_timestamp:
                if penultimate_was_timestamp:
                    logits[k, tk.timestamp_begin:] = -np.inf
                else:
                    logits[k, :tk.eot] = -np.inf
            timestamps = sampled_tokens[sampled_tokens.ge(tk.timestamp_begin)]
            if timestamps.numel() > 0:
                if last_was_timestamp and not penultimate_was_timestamp:
                    timestamp_last = timestamps[-1]
                else:
                    timestamp_last = timestamps[-1] + 1
                logits[k, tk.timestamp_begin:timestamp_last] = -np.inf
        if tokens.shape[1] == self.sample_begin:
            logits[:, :tk.timestamp_begin] = -np.inf
            if self.max_initial_timestamp_index is not None:
                last_allowed = tk.timestamp_begin + self.max_initial_timestamp_index
                logits[:, last_allowed + 1:] = -np.inf
        logprobs = F.log_softmax(logits.float(), dim=-1)
        for k in range(tokens.shape[0]):
            timestamp_logprob = logprobs[k, tk.timestamp_begin:].logsumexp(dim=-1)
            max_text_token_logprob = logprobs[k, :tk.timestamp_begin].max()
            if timestamp_logprob > max_text_token_logprob:
                logits[k, :tk.timestamp_begin] = -np.inf


class GreedyDecoder:
    def __init__(self, temperature, eot):
        self.temperature, self.eot = temperature, eot

    def reset(self):
        pass

    def update(self, tokens, logits, sum_logprobs, token_logprobs):
        assert self.temperature == 0, "the reference cannot reproduce sampling"
        next_tokens = logits.argmax(dim=-1)
        logprobs = F.log_softmax(logits.float(), dim=-1)
        current_logprobs = logprobs[torch.arange(logprobs.shape[0]), next_tokens]
        sum_logprobs += current_logprobs * (tokens[:, -1] != self.eot)
        for k in range(tokens.shape[0]):
            token_logprobs[k].append(current_logprobs[k].item() if tokens[k, -1] != self.eot else 0.0)
        next_tokens[tokens[:, -1] == self.eot] = self.eot
        tokens = torch.cat([tokens, next_tokens[:, None]], dim=-1)
        completed = (tokens[:, -1] == self.eot).all()
        return tokens, completed, token_logprobs

    def finalize(self, tokens, sum_logprobs):
        tokens = F.pad(tokens, (0, 1), value=self.eot)
        return tokens, sum_logprobs.tolist()


class BeamSearchDecoder:
    def __init__(self, beam_size, eot, inference, patience=None):
        self.beam_size, self.eot, self.inference = beam_size, eot, inference
        self.patience = patience or 1.0
        self.max_candidates = round(beam_size * self.patience)
        self.finished_sequences = None

    def reset(self):
        self.finished_sequences = None

    def update(self, tokens, logits, sum_logprobs, token_logprobs):
        n_audio = tokens.shape[0] // self.beam_size
        if self.finished_sequences is None:
            self.finished_sequences = [{} for _ in range(n_audio)]
        logprobs = F.log_softmax(logits.float(), dim=-1)
        next_tokens, source_indices, finished_sequences, next_lps = [], [], [], []
        for i in range(n_audio):
            scores, sources, finished, lps = {}, {}, {}, {}
            for j in range(self.beam_size):
                idx = i * self.beam_size + j
                prefix = tokens[idx].tolist()
                for logprob, token in zip(*logprobs[idx].topk(self.beam_size + 1)):
                    new_logprob = (sum_logprobs[idx] + logprob).item()
                    sequence = tuple(prefix + [token.item()])
                    scores[sequence] = new_logprob
                    sources[sequence] = idx
                    lps[sequence] = token_logprobs[idx] + [logprob.item()]
            saved = 0
            for sequence in sorted(scores, key=scores.get, reverse=True):
                if sequence[-1] == self.eot:
                    finished[sequence] = (scores[sequence], lps[sequence])
                else:
                    sum_logprobs[len(next_tokens)] = scores[sequence]
                    next_tokens.append(sequence)
                    next_lps.append(lps[sequence])
                    source_indices.append(sources[sequence])
                    saved += 1
                    if saved == self.beam_size:
                        break
            finished_sequences.append(finished)
        tokens = torch.tensor(next_tokens, device=tokens.device)
        self.inference.rearrange_kv_cache(source_indices)
        for previously_finished, newly_finished in zip(self.finished_sequences, finished_sequences):
            for seq in sorted(newly_finished, key=lambda s: newly_finished[s][0], reverse=True):
                if len(previously_finished) >= self.max_candidates:
                    break
                previously_finished[seq] = newly_finished[seq]
        completed = all(len(s) >= self.max_candidates for s in self.finished_sequences)
        return tokens, completed, next_lps

    def finalize(self, preceding_tokens, sum_logprobs, token_logprobs):
        sum_logprobs = sum_logprobs.cpu()
        for i, sequences in enumerate(self.finished_sequences):
            if len(sequences) < self.beam_size:
                for j in list(np.argsort(sum_logprobs[i]))[::-1]:
                    sequence = preceding_tokens[i, j].tolist() + [self.eot]
                    sequences[tuple(sequence)] = (sum_logprobs[i][j].item(),
                                                  token_logprobs[i * self.beam_size + j] + [0.0])
                    if len(sequences) >= self.beam_size:
                        break
        tokens = [[torch.tensor(seq) for seq in s.keys()] for s in self.finished_sequences]
        sums = [[v[0] for v in s.values()] for s in self.finished_sequences]
        lps = [[v[1] for v in s.values()] for s in self.finished_sequences]
        return tokens, sums, lps


def rank(tokens, sum_logprobs, length_penalty):
    def scores(logprobs, lengths):
        result = []
        for logprob, length in zip(logprobs, lengths):
            penalty = length if length_penalty is None else ((5 + length) / 6) ** length_penalty
            result.append(logprob / penalty)
        return result
    lengths = [[len(t) for t in s] for s in tokens]
    return [np.argmax(scores(p, l)) for p, l in zip(sum_logprobs, lengths)]


def decode(model, mel, opts, audio_features=None):
    """DecodingTask.run for one mel window [n_mels, 3000]."""
    tok = Tokenizer(model.hp, model.vocab, language=opts.language or "en", task=opts.task)
    n_group = opts.beam_size or opts.best_of or 1
    n_ctx = model.hp["n_text_ctx"]
    sample_len = opts.sample_len or n_ctx // 2
    sot_sequence = tok.sot_sequence_including_notimestamps if opts.without_timestamps else tok.sot_sequence
    tokens0 = list(sot_sequence)
    if opts.prompt:
        tokens0 = [tok.sot_prev] + list(opts.prompt)[-(n_ctx // 2 - 1):] + tokens0
    sample_begin = len(tokens0)
    sot_index = tokens0.index(tok.sot)
    inference = Inference(model, len(tokens0))
    decoder = (BeamSearchDecoder(opts.beam_size, tok.eot, inference, opts.patience) if opts.beam_size is not None
               else GreedyDecoder(opts.temperature, tok.eot))
    filters = []
    if opts.suppress_blank:
        filters.append(SuppressBlank(tok, sample_begin))
    st = opts.suppress_tokens
    st = [int(t) for t in st.split(",")] if isinstance(st, str) and st else list(st or [])
    if -1 in st:
        st = [t for t in st if t >= 0] + list(tok.non_speech_tokens())
    st += [tok.transcribe, tok.translate, tok.sot, tok.sot_prev, tok.sot_lm, tok.no_speech]
    filters.append(SuppressTokens(sorted(set(st))))
    if not opts.without_timestamps:
        precision = 30 / model.hp["n_audio_ctx"]
        mi = round(opts.max_initial_timestamp / precision) if opts.max_initial_timestamp else None
        filters.append(ApplyTimestampRules(tok, sample_begin, mi))
    if audio_features is None:
        audio_features = model.encoder(mel[None])
    tokens = torch.tensor([tokens0]).repeat_interleave(n_group, dim=0)
    af = audio_features.repeat_interleave(n_group, dim=0)
    sum_logprobs = torch.zeros(n_group)
    token_logprobs = [[] for _ in range(n_group)]
    no_speech_prob = float("nan")
    decoder.reset()
    for i in range(sample_len):
        logits = inference.logits(tokens, af)
        if i == 0:
            no_speech_prob = logits[:, sot_index].float().softmax(dim=-1)[:, tok.no_speech].tolist()[0]
        logits = logits[:, -1]
        for f in filters:
            f.apply(logits, tokens)
        tokens, completed, token_logprobs = decoder.update(tokens, logits, sum_logprobs, token_logprobs)
        if completed or tokens.shape[-1] > n_ctx:
            break
    tokens = tokens.reshape(1, n_group, -1)
    sums = sum_logprobs.reshape(1, n_group)
    if isinstance(decoder, BeamSearchDecoder):
        cand, sums, lps = decoder.finalize(tokens, sums, token_logprobs)
    else:
        cand_t, sums = decoder.finalize(tokens, sums)
        cand = [[t for t in cand_t[0]]]
        sums = [sums[0]] if isinstance(sums[0], list) else [sums]
        lps = [token_logprobs]
    cand = [[t[sample_begin:(t == tok.eot).nonzero()[0, 0]] for t in s] for s in cand]
    sel = rank(cand, sums, opts.length_penalty)[0]
    out_tokens = cand[0][sel].tolist()
    text = tok.decode(out_tokens).strip()
    sum_lp = sums[0][sel]
    return dict(tokens=out_tokens, logprobs=lps[0][sel][:len(out_tokens)], text=text, sum_logprob=sum_lp,
                avg_logprob=sum_lp / (len(out_tokens) + 1), no_speech_prob=no_speech_prob,
                temperature=opts.temperature, compression_ratio=compression_ratio(text))


def detect_language(model, audio_features):
    tok = Tokenizer(model.hp, model.vocab)
    x = torch.tensor([[tok.sot]])
    logits = model.decoder(x, audio_features)[:, 0]
    mask = torch.ones(logits.shape[-1], dtype=torch.bool)
    mask[list(tok.all_language_tokens)] = False
    logits[:, mask] = -np.inf
    probs = logits.softmax(dim=-1)[0]
    return [probs[t].item() for t in tok.all_language_tokens]


# ---------------------------------------------------------------- timing.py

def median_filter(x, filter_width):
    pad_width = filter_width // 2
    if x.shape[-1] <= pad_width:
        return x
    if (ndim := x.ndim) <= 2:
        x = x[None, None, :]
    x = F.pad(x, (filter_width // 2, filter_width // 2, 0, 0), mode="reflect")
    result = x.unfold(-1, filter_width, 1).sort()[0][..., filter_width // 2]
    if ndim <= 2:
        result = result[0, 0]
    return result


def backtrace(trace):
    i = trace.shape[0] - 1
    j = trace.shape[1] - 1
    trace[0, :] = 2
    trace[:, 0] = 1
    result = []
    while i > 0 or j > 0:
        result.append((i - 1, j - 1))
        if trace[i, j] == 0:
            i -= 1
            j -= 1
        elif trace[i, j] == 1:
            i -= 1
        elif trace[i, j] == 2:
            j -= 1
        else:
            raise ValueError("Unexpected trace[i, j]")
    result = np.array(result)
    return result[::-1, :].T


def dtw_cpu(x):
    N, M = x.shape
    cost = np.ones((N + 1, M + 1), dtype=np.float32) * np.inf
    trace = -np.ones((N + 1, M + 1), dtype=np.float32)
    cost[0, 0] = 0
    for j in range(1, M + 1):
        for i in range(1, N + 1):
            c0 = cost[i - 1, j - 1]
            c1 = cost[i - 1, j]
            c2 = cost[i, j - 1]
            if c0 < c1 and c0 < c2:
                c, t = c0, 0
            elif c1 < c0 and c1 < c2:
                c, t = c1, 1
            else:
                c, t = c2, 2
            cost[i, j] = x[i - 1, j - 1] + c
            trace[i, j] = t
    return backtrace(trace)


def find_alignment(model, tok, text_tokens, audio_features, num_frames, medfilt_width=7, qk_scale=1.0):
    if len(text_tokens) == 0:
        return []
    tokens = torch.tensor([*tok.sot_sequence, tok.no_timestamps, *text_tokens, tok.eot])
    logits = model.decoder(tokens[None], audio_features)[0]
    QKs = [b.cross_qk[0] for b in model.dec_blocks]
    sampled_logits = logits[len(tok.sot_sequence):, :tok.eot]
    token_probs = sampled_logits.softmax(dim=-1)
    text_token_probs = token_probs[np.arange(len(text_tokens)), text_tokens].tolist()
    weights = torch.stack([QKs[l][h] for l, h in model.alignment_heads])
    weights = weights[:, :, :num_frames // 2]
    weights = (weights * qk_scale).softmax(dim=-1)
    std, mean = torch.std_mean(weights, dim=-2, keepdim=True, unbiased=False)
    weights = (weights - mean) / std
    weights = median_filter(weights, medfilt_width)
    matrix = weights.mean(axis=0)
    matrix = matrix[len(tok.sot_sequence):-1]
    text_indices, time_indices = dtw_cpu((-matrix).double().numpy())
    words, word_tokens = tok.split_to_word_tokens(text_tokens + [tok.eot])
    if len(word_tokens) <= 1:
        return []
    word_boundaries = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
    jumps = np.pad(np.diff(text_indices), (1, 0), constant_values=1).astype(bool)
    jump_times = time_indices[jumps] / TOKENS_PER_SECOND
    start_times = jump_times[word_boundaries[:-1]]
    end_times = jump_times[word_boundaries[1:]]
    word_probabilities = [np.mean(text_token_probs[i:j]) for i, j in zip(word_boundaries[:-1], word_boundaries[1:])]
    return [dict(word=w, tokens=t, start=s, end=e, probability=p)
            for w, t, s, e, p in zip(words, word_tokens, start_times, end_times, word_probabilities)]


def merge_punctuations(alignment, prepended, appended):
    i = len(alignment) - 2
    j = len(alignment) - 1
    while i >= 0:
        previous, following = alignment[i], alignment[j]
        if previous["word"].startswith(" ") and previous["word"].strip() in prepended:
            following["word"] = previous["word"] + following["word"]
            following["tokens"] = previous["tokens"] + following["tokens"]
            previous["word"] = ""
            previous["tokens"] = []
        else:
            j = i
        i -= 1
    i, j = 0, 1
    while j < len(alignment):
        previous, following = alignment[i], alignment[j]
        if not previous["word"].endswith(" ") and following["word"] in appended:
            previous["word"] = previous["word"] + following["word"]
            previous["tokens"] = previous["tokens"] + following["tokens"]
            following["word"] = ""
            following["tokens"] = []
        else:
            i = j
        j += 1


def add_word_timestamps(segments, model, tok, audio_features, num_frames, last_speech_timestamp,
                        prepend_punctuations="\"'“¿([{-", append_punctuations="\"'.。,，!！?？:：”)]}、"):
    if len(segments) == 0:
        return
    text_tokens_per_segment = [[t for t in s["tokens"] if t < tok.eot] for s in segments]
    text_tokens = [t for s in text_tokens_per_segment for t in s]
    alignment = find_alignment(model, tok, text_tokens, audio_features, num_frames)
    word_durations = np.array([t["end"] - t["start"] for t in alignment])
    word_durations = word_durations[word_durations.nonzero()]
    median_duration = np.median(word_durations) if len(word_durations) > 0 else 0.0
    median_duration = min(0.7, float(median_duration))
    max_duration = median_duration * 2
    if len(word_durations) > 0:
        sentence_end_marks = ".。!！?？"
        for i in range(1, len(alignment)):
            if alignment[i]["end"] - alignment[i]["start"] > max_duration:
                if alignment[i]["word"] in sentence_end_marks:
                    alignment[i]["end"] = alignment[i]["start"] + max_duration
                elif alignment[i - 1]["word"] in sentence_end_marks:
                    alignment[i]["start"] = alignment[i]["end"] - max_duration
    merge_punctuations(alignment, prepend_punctuations, append_punctuations)
    time_offset = segments[0]["seek"] * HOP_LENGTH / SAMPLE_RATE
    word_index = 0
    for segment, text_tokens in zip(segments, text_tokens_per_segment):
        saved_tokens = 0
        words = []
        while word_index < len(alignment) and saved_tokens < len(text_tokens):
            timing = alignment[word_index]
            if timing["word"]:
                words.append(dict(word=timing["word"], start=round(time_offset + timing["start"], 2),
                                  end=round(time_offset + timing["end"], 2), probability=timing["probability"]))
            saved_tokens += len(timing["tokens"])
            word_index += 1
        if len(words) > 0:
            if words[0]["end"] - last_speech_timestamp > median_duration * 4 and (
                    words[0]["end"] - words[0]["start"] > max_duration
                    or (len(words) > 1 and words[1]["end"] - words[0]["start"] > max_duration * 2)):
                if len(words) > 1 and words[1]["end"] - words[1]["start"] > max_duration:
                    boundary = max(words[1]["end"] / 2, words[1]["end"] - max_duration)
                    words[0]["end"] = words[1]["start"] = boundary
                words[0]["start"] = max(0, words[0]["end"] - max_duration)
            if segment["start"] < words[0]["end"] and segment["start"] - 0.5 > words[0]["start"]:
                words[0]["start"] = max(0, min(words[0]["end"] - median_duration, segment["start"]))
            else:
                segment["start"] = words[0]["start"]
            if segment["end"] > words[-1]["start"] and segment["end"] + 0.5 < words[-1]["end"]:
                words[-1]["end"] = max(words[-1]["start"] + median_duration, segment["end"])
            else:
                segment["end"] = words[-1]["end"]
            last_speech_timestamp = segment["end"]
        segment["words"] = words


# ---------------------------------------------------------------- transcribe.py

def get_end(segments):
    return next((w["end"] for s in reversed(segments) for w in reversed(s["words"])),
                segments[-1]["end"] if segments else None)


def transcribe(model, mel, temperature=(0.0,), compression_ratio_threshold=2.4, logprob_threshold=-1.0,
               no_speech_threshold=0.6, condition_on_previous_text=True, initial_prompt=None, word_timestamps=False,
               language=None, **decode_options):
    content_frames = mel.shape[-1] - N_FRAMES
    tok0 = Tokenizer(model.hp, model.vocab)
    lang_probs = None
    if language is None:
        if not tok0.multilingual:
            language = "en"
        else:
            mel_segment = mel_ref.pad_or_trim(mel, N_FRAMES)
            lang_probs = detect_language(model, model.encoder(mel_segment[None]))
            language = LANGUAGES[int(np.argmax(lang_probs))]
    task = decode_options.get("task", "transcribe")
    tok = Tokenizer(model.hp, model.vocab, language=language, task=task)
    seek = 0
    input_stride = N_FRAMES // model.hp["n_audio_ctx"]
    time_precision = input_stride * HOP_LENGTH / SAMPLE_RATE
    all_tokens, all_segments, prompt_reset_since = [], [], 0
    if initial_prompt is not None:
        initial_prompt_tokens = tok.encode(" " + initial_prompt.strip())
        all_tokens.extend(initial_prompt_tokens)
    else:
        initial_prompt_tokens = []
    last_speech_timestamp = 0.0
    windows = 0
    while seek < content_frames:
        time_offset = float(seek * HOP_LENGTH / SAMPLE_RATE)
        segment_size = min(N_FRAMES, content_frames - seek)
        mel_segment = mel[:, seek:seek + segment_size]
        segment_duration = segment_size * HOP_LENGTH / SAMPLE_RATE
        mel_segment = mel_ref.pad_or_trim(mel_segment, N_FRAMES)
        audio_features = model.encoder(mel_segment[None])
        windows += 1
        prompt = all_tokens[prompt_reset_since:]
        result = None
        for t in temperature:
            kw = dict(decode_options)
            if t > 0:
                kw.pop("beam_size", None)
                kw.pop("patience", None)
            else:
                kw.pop("best_of", None)
            result = decode(model, None, Options(**kw, language=language, temperature=t, prompt=prompt),
                            audio_features)
            needs_fallback = False
            if compression_ratio_threshold is not None and result["compression_ratio"] > compression_ratio_threshold:
                needs_fallback = True
            if logprob_threshold is not None and result["avg_logprob"] < logprob_threshold:
                needs_fallback = True
            if (no_speech_threshold is not None and result["no_speech_prob"] > no_speech_threshold
                    and logprob_threshold is not None and result["avg_logprob"] < logprob_threshold):
                needs_fallback = False
            if not needs_fallback:
                break
        tokens = torch.tensor(result["tokens"])
        if no_speech_threshold is not None:
            should_skip = result["no_speech_prob"] > no_speech_threshold
            if logprob_threshold is not None and result["avg_logprob"] > logprob_threshold:
                should_skip = False
            if should_skip:
                seek += segment_size
                continue
        current_segments = []

        def new_segment(start, end, tokens):
            tokens = tokens.tolist()
            text_tokens = [t for t in tokens if t < tok.eot]
            return dict(seek=seek, start=start, end=end, text=tok.decode(text_tokens), tokens=tokens, words=[])

        timestamp_tokens = tokens.ge(tok.timestamp_begin)
        single_timestamp_ending = timestamp_tokens[-2:].tolist() == [False, True]
        consecutive = torch.where(timestamp_tokens[:-1] & timestamp_tokens[1:])[0]
        consecutive.add_(1)
        if len(consecutive) > 0:
            slices = consecutive.tolist()
            if single_timestamp_ending:
                slices.append(len(tokens))
            last_slice = 0
            for current_slice in slices:
                sliced_tokens = tokens[last_slice:current_slice]
                start_timestamp_pos = sliced_tokens[0].item() - tok.timestamp_begin
                end_timestamp_pos = sliced_tokens[-1].item() - tok.timestamp_begin
                current_segments.append(new_segment(time_offset + start_timestamp_pos * time_precision,
                                                    time_offset + end_timestamp_pos * time_precision, sliced_tokens))
                last_slice = current_slice
            if single_timestamp_ending:
                seek += segment_size
            else:
                last_timestamp_pos = tokens[last_slice - 1].item() - tok.timestamp_begin
                seek += last_timestamp_pos * input_stride
        else:
            duration = segment_duration
            timestamps = tokens[timestamp_tokens.nonzero().flatten()]
            if len(timestamps) > 0 and timestamps[-1].item() != tok.timestamp_begin:
                last_timestamp_pos = timestamps[-1].item() - tok.timestamp_begin
                duration = last_timestamp_pos * time_precision
            current_segments.append(new_segment(time_offset, time_offset + duration, tokens))
            seek += segment_size
        if word_timestamps:
            add_word_timestamps(current_segments, model, tok, audio_features, segment_size, last_speech_timestamp)
            if not single_timestamp_ending:
                last_word_end = get_end(current_segments)
                if last_word_end is not None and last_word_end > time_offset:
                    seek = round(last_word_end * FRAMES_PER_SECOND)
            last_word_end = get_end(current_segments)
            if last_word_end is not None:
                last_speech_timestamp = last_word_end
        for segment in current_segments:
            if segment["start"] == segment["end"] or segment["text"].strip() == "":
                segment["text"] = ""
                segment["tokens"] = []
                segment["words"] = []
        all_segments.extend(s for s in current_segments if s["tokens"])
        all_tokens.extend([t for s in current_segments for t in s["tokens"]])
        if not condition_on_previous_text or result["temperature"] > 0.5:
            prompt_reset_since = len(all_tokens)
    return dict(text=tok.decode(all_tokens[len(initial_prompt_tokens):]), segments=all_segments, language=language,
                lang_probs=lang_probs, windows=windows)


# ---------------------------------------------------------------- driver

def load_model(path):
    if os.path.isdir(path):
        hp, filters, vocab, tensors = read_hf(path)
    else:
        hp, filters, vocab, tensors = read_ggml(path)
    model = Whisper(hp, tensors)
    model.vocab = vocab
    model.filters = torch.from_numpy(filters) if filters is not None else None
    nl, nh = hp["n_text_layer"], hp["n_text_head"]
    model.alignment_heads = [(l, h) for l in range(nl // 2, nl) for h in range(nh)]
    return model


def dump(path, arr):
    np.ascontiguousarray(arr, dtype=np.float32).tofile(path)


def window(mel, seek):
    content = mel.shape[-1] - N_FRAMES
    size = min(N_FRAMES, content - seek)
    return mel_ref.pad_or_trim(mel[:, seek:seek + size], N_FRAMES)


def main():
    spec = json.load(open(sys.argv[1]))
    model = load_model(spec["model"])
    filters = model.filters if model.filters is not None else mel_ref.read_filters(spec["filters"])
    audio = mel_ref.read_wav(spec["audio"])
    mel = mel_ref.log_mel_spectrogram(audio, filters, padding=480000)
    out = spec["out"]
    import time
    for case in spec["cases"]:
        name, kind = case["name"], case["kind"]
        t0 = time.time()
        res = {}
        if kind == "mel":
            dump(os.path.join(out, name + ".f32"), mel.numpy())
            res = dict(shape=list(mel.shape))
        elif kind == "encode":
            af = model.encoder(window(mel, case.get("seek", 0))[None])
            dump(os.path.join(out, name + ".f32"), af[0].numpy())
            res = dict(shape=list(af[0].shape))
        elif kind == "logits":
            af = model.encoder(window(mel, case.get("seek", 0))[None])
            lg = model.decoder(torch.tensor([case["tokens"]]), af)[0]
            dump(os.path.join(out, name + ".f32"), lg.numpy())
            res = dict(shape=list(lg.shape))
        elif kind == "decode":
            af = model.encoder(window(mel, case.get("seek", 0))[None])
            res = decode(model, None, Options(**case.get("opts", {})), af)
        elif kind == "filters":
            af = model.encoder(window(mel, 0)[None])
            o = Options(**case.get("opts", {}))
            tok = Tokenizer(model.hp, model.vocab, language=o.language or "en", task=o.task)
            init = list(tok.sot_sequence_including_notimestamps if o.without_timestamps else tok.sot_sequence)
            masks, raws = [], []
            for pre in case["prefixes"]:
                toks = torch.tensor([init + pre])
                lg = model.decoder(toks, af)[0, -1:].clone()
                raws.append(lg[0].numpy().copy())
                sb = len(init)
                fl = []
                if o.suppress_blank:
                    fl.append(SuppressBlank(tok, sb))
                st = list(tok.non_speech_tokens()) if o.suppress_tokens == "-1" else []
                st += [tok.transcribe, tok.translate, tok.sot, tok.sot_prev, tok.sot_lm, tok.no_speech]
                fl.append(SuppressTokens(sorted(set(st))))
                if not o.without_timestamps:
                    fl.append(ApplyTimestampRules(tok, sb, round(o.max_initial_timestamp / 0.02)
                                                  if o.max_initial_timestamp else None))
                for f in fl:
                    f.apply(lg, toks)
                masks.append([int(i) for i in torch.nonzero(torch.isinf(lg[0])).flatten().tolist()])
            dump(os.path.join(out, name + ".f32"), np.stack(raws))
            res = dict(masks=masks)
        elif kind == "transcribe":
            o = dict(case.get("opts", {}))
            if "temperature" in o:
                o["temperature"] = tuple(o["temperature"])
            res = transcribe(model, mel, **o)
        elif kind == "detect":
            af = model.encoder(mel_ref.pad_or_trim(mel, N_FRAMES)[None])
            res = dict(probs=detect_language(model, af))
        elif kind == "tokenize":
            tok = Tokenizer(model.hp, model.vocab)
            res = dict(ids=[tok.encode(t) for t in case["texts"]])
        elif kind == "nst":
            tok = Tokenizer(model.hp, model.vocab)
            res = dict(ids=list(tok.non_speech_tokens()), space=tok.encode(" "))
        else:
            raise ValueError(kind)
        with open(os.path.join(out, name + ".json"), "w") as f:
            json.dump(res, f)
        print(f"  ref {name}: {time.time() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
