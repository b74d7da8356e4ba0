// Reference token ids from HF tokenizers' Rust core (@anush008/tokenizers, N-API build of `tokenizers`).
// usage: node tok_ref.js TOKENIZER_JSON STRINGS_JSON
// prints JSON: [[ids without specials, ids with specials, decode(ids with specials)], ...] per string
'use strict';
const fs = require('fs');
const { Tokenizer } = require('@anush008/tokenizers');

async function main() {
  const [tokPath, strPath] = process.argv.slice(2);
  const tok = Tokenizer.fromFile(tokPath);
  const strs = JSON.parse(fs.readFileSync(strPath, 'utf8'));
  const out = [];
  for (const s of strs) {
    const a = await tok.encode(s, null, { addSpecialTokens: false });
    const b = await tok.encode(s, null, { addSpecialTokens: true });
    const d = await tok.decode(a.getIds(), false);
    out.push([a.getIds(), b.getIds(), d]);
  }
  process.stdout.write(JSON.stringify(out));
}
main().catch((e) => { console.error(String(e)); process.exit(2); });
