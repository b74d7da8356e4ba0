// mel_ref.mjs — HF transformers.js WhisperFeatureExtractor as an independent reference for mmpipe's log-mel.
// usage: node mel_ref.mjs WAV N_MELS OUT_FEATURES OUT_FILTERS
//   WAV: 16-bit PCM mono WAV (parsed here); the extractor computes its own slaney filters (no mel_filters in
//   the config), pads/trims to 30 s and returns [N_MELS][3000] log-mel features. Both outputs are raw
//   float32 ([N_MELS][3000] and [N_MELS][201]); prints "N_MELS FRAMES".
import { readFileSync, writeFileSync } from 'node:fs';
import { WhisperFeatureExtractor } from '@huggingface/transformers';

function readWav(path) {
    const b = readFileSync(path);
    if (b.toString('ascii', 0, 4) !== 'RIFF' || b.toString('ascii', 8, 12) !== 'WAVE') throw new Error(`${path}: not a WAV file`);
    let off = 12, fmt = null;
    while (off + 8 <= b.length) {
        const id = b.toString('ascii', off, off + 4), size = b.readUInt32LE(off + 4);
        if (id === 'fmt ') fmt = { ch: b.readUInt16LE(off + 10), rate: b.readUInt32LE(off + 12), bits: b.readUInt16LE(off + 22) };
        if (id === 'data') {
            if (!fmt || fmt.ch !== 1 || fmt.bits !== 16 || fmt.rate !== 16000) throw new Error(`${path}: need 16 kHz mono s16`);
            const n = Math.floor(Math.min(size, b.length - off - 8) / 2), x = new Float32Array(n);
            for (let i = 0; i < n; i++) x[i] = b.readInt16LE(off + 8 + 2 * i) / 32768;
            return x;
        }
        off += 8 + size + (size & 1);
    }
    throw new Error(`${path}: no data chunk`);
}

const [wav, nMelsArg, outFeat, outFilt] = process.argv.slice(2);
const nMels = parseInt(nMelsArg, 10);
const fe = new WhisperFeatureExtractor({
    feature_extractor_type: 'WhisperFeatureExtractor', feature_size: nMels, sampling_rate: 16000, hop_length: 160,
    n_fft: 400, chunk_length: 30, n_samples: 480000, nb_max_frames: 3000, padding_value: 0.0, return_attention_mask: false,
});
const { input_features } = await fe(readWav(wav));
const [, m, frames] = input_features.dims;
writeFileSync(outFeat, Buffer.from(Float32Array.from(input_features.data).buffer));
const filt = new Float32Array(nMels * 201);
const mf = fe.config.mel_filters; // [n_mels][201]
for (let i = 0; i < nMels; i++) for (let j = 0; j < 201; j++) filt[i * 201 + j] = mf[i][j];
writeFileSync(outFilt, Buffer.from(filt.buffer));
console.log(m, frames);
